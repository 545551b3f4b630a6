#pragma once
/// Errors: every library failure is a scoreflow::Error whose message names the bad value (and,
/// for names, the valid choices). Messages speak the library's language: a setting is named as
/// its field (`batch`, `num_images`), never as a command-line flag. Only cli/ turns an Error into
/// an `error:` line and an exit code, showing its own flag names for the fields (docs/design.md §7).
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace scoreflow {

/// A setting's name inside an error message: fail(Field{"batch"}, " must be >= 1, got ", n)
/// reads "batch must be >= 1, got 0", and the Error records where the name stands so that a front
/// end can put its own spelling there (the CLI writes "--batch must be >= 1, got 0").
struct Field {
  const char* name;
};

class Error : public std::runtime_error {
 public:
  /// A field named in the message: `name` starts at byte `pos` of what().
  struct FieldRef {
    std::string name;
    size_t pos = 0;
  };

  explicit Error(const std::string& message, std::vector<FieldRef> fields = {})
      : std::runtime_error(message), fields_(std::move(fields)) {}

  /// The fields the message names, in order (empty when it names none).
  const std::vector<FieldRef>& fields() const { return fields_; }
  /// The first field the message names, or "".
  std::string field() const { return fields_.empty() ? std::string() : fields_.front().name; }

  /// The message with every recorded field replaced by spell(name); a name spell() maps to ""
  /// keeps its library spelling.
  template <typename Spell>
  std::string spelled(const Spell& spell) const {
    std::string text = what();
    for (auto it = fields_.rbegin(); it != fields_.rend(); ++it) {
      const std::string other = spell(it->name);
      if (!other.empty() && text.compare(it->pos, it->name.size(), it->name) == 0)
        text.replace(it->pos, it->name.size(), other);
    }
    return text;
  }

  /// The same error with `prefix` put in front of the message (context added by a caller), the
  /// recorded fields kept.
  Error prefixed(const std::string& prefix) const {
    std::vector<FieldRef> moved = fields_;
    for (FieldRef& f : moved) f.pos += prefix.size();
    return Error(prefix + what(), std::move(moved));
  }

 private:
  std::vector<FieldRef> fields_;
};

/// An error message built piece by piece (for messages that list things): `m << "valid: " <<
/// Field{"student"} << ...; m.raise();`. A Field part is recorded as fail() records it.
class ErrorMessage {
 public:
  template <typename T>
  ErrorMessage& operator<<(const T& part) {
    os_ << part;
    return *this;
  }
  ErrorMessage& operator<<(const Field& field) {
    fields_.push_back({field.name, static_cast<size_t>(os_.tellp())});
    os_ << field.name;
    return *this;
  }
  Error error() const { return Error(os_.str(), fields_); }
  [[noreturn]] void raise() const { throw error(); }

 private:
  std::ostringstream os_;
  std::vector<Error::FieldRef> fields_;
};

/// Builds a message from its parts and throws it: fail("steps must be >= 1, got ", n). A part
/// that is a Field names a setting (see Field).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  ErrorMessage m;
  (void)(m << ... << parts);
  m.raise();
}

/// "a, b, c" — for listing valid choices in messages.
inline std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

}  // namespace scoreflow
