// A listener's certificate and private key (server.tls, server.api_tls) as an OpenSSL server
// context, read from PEM files at start and read again on reload (SIGHUP): new connections get
// the context current when they are accepted, open ones keep the one they began with.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "tide/config/config.h"

namespace boost::asio::ssl {
class context;
}

namespace tide::gateway {

class TlsCerts {
 public:
  // Reads `spec`'s files; throws config::ConfigError naming the field (`field` is e.g.
  // "server.tls") and the file: missing or unreadable, no PEM certificate or key in it, or a key
  // that does not match the certificate.
  TlsCerts(config::TlsSpec spec, std::string field);
  ~TlsCerts();

  std::shared_ptr<boost::asio::ssl::context> current() const;
  // What the current certificate is, for the log: "CN=..., serial ..., expires ...".
  std::string describe() const;
  // Reads the files again. Fine: the new certificate serves new connections and the answer
  // describes it. Not: the previous one stays and the answer says why ("kept ...").
  std::string reload();
  const std::string& field() const { return field_; }

 private:
  config::TlsSpec spec_;
  std::string field_;
  mutable std::mutex mu_;
  std::shared_ptr<boost::asio::ssl::context> ctx_;  // guarded by mu_
  std::string about_;                               // guarded by mu_
};

}  // namespace tide::gateway
