// The README's commands that use shipped files run as written (README.md, "Commands run by CI"): a
// fenced ```sh block right after a line `<!-- ci: run -->` is extracted, each command is run with
// the built executable in a scratch folder that links models/, and must exit 0. The marker may
// carry substitutions for small settings, `<!-- ci: run; --seeds 0-35 => --seeds 0-3 -->`; each
// must match somewhere in its block, so that the README cannot drift away from them.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Block {
  int line = 0;                                           ///< of the marker, 1-based
  std::vector<std::pair<std::string, std::string>> subs;  ///< "from => to" pairs
  std::vector<std::string> commands;                      ///< continuation lines joined, comments dropped
  std::string error;                                      ///< a malformed marker or block
};

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

/// Every block marked `<!-- ci: run[; A => B]... -->` in `text`.
std::vector<Block> marked_blocks(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  std::vector<Block> blocks;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string marker = trim(lines[i]);
    if (marker.rfind("<!-- ci: run", 0) != 0) continue;
    Block b;
    b.line = static_cast<int>(i) + 1;
    if (marker.size() < 16 || marker.compare(marker.size() - 3, 3, "-->") != 0) {
      b.error = "marker does not end in -->";
      blocks.push_back(b);
      continue;
    }
    std::string rest = marker.substr(12, marker.size() - 15);
    for (size_t start = 0; start <= rest.size();) {
      size_t end = rest.find(';', start);
      if (end == std::string::npos) end = rest.size();
      const std::string item = trim(rest.substr(start, end - start));
      start = end + 1;
      if (item.empty()) continue;
      const size_t arrow = item.find("=>");
      if (arrow == std::string::npos) {
        b.error = "substitution '" + item + "' has no =>";
        break;
      }
      b.subs.emplace_back(trim(item.substr(0, arrow)), trim(item.substr(arrow + 2)));
    }
    size_t j = i + 1;
    while (j < lines.size() && trim(lines[j]).empty()) ++j;
    if (j >= lines.size() || (trim(lines[j]) != "```sh" && trim(lines[j]) != "```bash")) {
      if (b.error.empty()) b.error = "marker is not followed by a ```sh block";
      blocks.push_back(b);
      continue;
    }
    std::string command;
    for (++j; j < lines.size() && trim(lines[j]) != "```"; ++j) {
      std::string l = lines[j];
      if (trim(l).rfind("#", 0) == 0) continue;  // a comment line
      const size_t hash = l.find(" #");          // a trailing comment
      if (hash != std::string::npos) l = l.substr(0, hash);
      l = trim(l);
      const bool continues = !l.empty() && l.back() == '\\';
      if (continues) l.pop_back();
      command += (command.empty() ? "" : " ") + trim(l);
      if (!continues && !trim(command).empty()) b.commands.push_back(trim(command)), command.clear();
    }
    blocks.push_back(b);
  }
  return blocks;
}

/// Runs `command` through /bin/sh in `dir`; exit status and stdout + stderr.
std::pair<int, std::string> shell(const std::string& dir, const std::string& command) {
  const std::string full = "cd '" + dir + "' && " + command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

TEST(ReadmeCommands, MarkerParsing) {
  const auto blocks = marked_blocks(
      "text\n<!-- ci: run; --seeds 0-35 => --seeds 0-3 ; a=>b -->\n\n```sh\n# comment\n"
      "scoreflow sample --seeds 0-35 \\\n    --out x.png   # trailing\nscoreflow list samplers\n```\n"
      "<!-- ci: run -->\nplain text\n<!-- ci: run; oops -->\n```sh\n```\n");
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].line, 2);
  EXPECT_TRUE(blocks[0].error.empty()) << blocks[0].error;
  ASSERT_EQ(blocks[0].subs.size(), 2u);
  EXPECT_EQ(blocks[0].subs[0], (std::pair<std::string, std::string>{"--seeds 0-35", "--seeds 0-3"}));
  EXPECT_EQ(blocks[0].subs[1], (std::pair<std::string, std::string>{"a", "b"}));
  EXPECT_EQ(blocks[0].commands,
            (std::vector<std::string>{"scoreflow sample --seeds 0-35 --out x.png", "scoreflow list samplers"}));
  EXPECT_EQ(blocks[1].error, "marker is not followed by a ```sh block");
  EXPECT_EQ(blocks[2].error, "substitution 'oops' has no =>");
}

#ifdef SCOREFLOW_CLI_PATH
TEST(ReadmeCommands, MarkedBlocksRunAsWritten) {
  const std::filesystem::path source = SCOREFLOW_SOURCE_DIR;
  std::ifstream in(source / "README.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto blocks = marked_blocks(ss.str());
  ASSERT_GE(blocks.size(), 2u) << "README.md has lost its <!-- ci: run --> blocks";
  const std::string dir = ::testing::TempDir() + "/scoreflow_readme_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::create_directory_symlink(source / "models", dir + "/models");
  for (const Block& b : blocks) {
    SCOPED_TRACE("README.md line " + std::to_string(b.line));
    ASSERT_TRUE(b.error.empty()) << b.error;
    ASSERT_FALSE(b.commands.empty()) << "empty block";
    std::vector<std::string> commands = b.commands;
    for (const auto& [from, to] : b.subs) {
      bool used = false;
      for (std::string& c : commands)
        for (size_t at; (at = c.find(from)) != std::string::npos; used = true) c.replace(at, from.size(), to);
      EXPECT_TRUE(used) << "substitution '" << from << "' matches nothing in the block";
    }
    for (std::string c : commands) {
      if (c.find("/usr/share/datasets/") != std::string::npos &&
          !std::filesystem::exists("/usr/share/datasets/fashion-mnist"))
        GTEST_SKIP() << "apt-get install dataset-fashion-mnist";
      for (const std::string prefix : {"./build/scoreflow ", "scoreflow "})
        if (c.rfind(prefix, 0) == 0) c = std::string(SCOREFLOW_CLI_PATH) + " " + c.substr(prefix.size());
      ASSERT_EQ(c.rfind(SCOREFLOW_CLI_PATH, 0), 0u) << "not a scoreflow command: " << c;
      const auto [code, out] = shell(dir, c);
      EXPECT_EQ(code, 0) << c << "\n" << out;
    }
  }
  std::filesystem::remove_all(dir);
}
#endif

}  // namespace
