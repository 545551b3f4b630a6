#include <cstdio>
int main() { std::puts("scoreflow"); return 0; }
