#include "oci/image/AuthChallenge.h"

#include <algorithm>
#include <cctype>

namespace monocri::oci {

namespace {

// RFC 9110 token characters.
bool isTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  bool done() const { return pos_ >= text_.size(); }
  void skipSpaces() {
    while (!done() && (text_[pos_] == ' ' || text_[pos_] == '\t'))
      ++pos_;
  }
  void skipSpacesAndCommas() {
    while (!done() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == ','))
      ++pos_;
  }
  char peek() const { return done() ? '\0' : text_[pos_]; }
  void advance() { ++pos_; }
  size_t position() const { return pos_; }
  void rewind(size_t pos) { pos_ = pos; }
  std::string_view token() {
    const size_t start = pos_;
    while (!done() && isTokenChar(text_[pos_]))
      ++pos_;
    return text_.substr(start, pos_ - start);
  }
  // A quoted-string with backslash escapes; false if it never closes.
  bool quoted(std::string& out) {
    out.clear();
    ++pos_;  // opening quote
    while (!done()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\' && !done()) c = text_[pos_++];
      out.push_back(c);
    }
    return false;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::string AuthChallenge::param(const std::string& name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

std::vector<AuthChallenge> parseWwwAuthenticate(std::string_view header) {
  std::vector<AuthChallenge> challenges;
  Scanner scan(header);
  while (true) {
    scan.skipSpacesAndCommas();
    if (scan.done()) break;
    const std::string_view scheme = scan.token();
    if (scheme.empty()) break;  // not a token: give up on the rest
    AuthChallenge challenge{lowercase(scheme), {}};
    // auth-params: name = (token | quoted-string), separated by commas. A name followed by
    // something other than '=' starts the next challenge.
    while (true) {
      scan.skipSpacesAndCommas();
      const size_t mark = scan.position();
      const std::string_view name = scan.token();
      scan.skipSpaces();
      if (name.empty() || scan.peek() != '=') {
        scan.rewind(mark);
        break;
      }
      scan.advance();  // '='
      scan.skipSpaces();
      std::string value;
      if (scan.peek() == '"') {
        if (!scan.quoted(value)) return challenges;  // unterminated: drop what is malformed
      } else {
        value = scan.token();
      }
      challenge.params[lowercase(name)] = std::move(value);
    }
    challenges.push_back(std::move(challenge));
    // Each turn consumes a non-empty scheme token, so the loop ends.
  }
  return challenges;
}

}  // namespace monocri::oci
