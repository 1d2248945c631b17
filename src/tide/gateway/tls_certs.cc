#include "tide/gateway/tls_certs.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace tide::gateway {

namespace ssl = boost::asio::ssl;

namespace {

// PEM files larger than this are not certificates or keys.
constexpr std::streamoff kMaxPemBytes = 1 << 20;

// OpenSSL's reason for the last failure on this thread as " (reason)" (its queue emptied), or ""
// when it gave none.
std::string openssl_reason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    if (const char* r = ERR_reason_error_string(e)) out = r;
  }
  return out.empty() ? out : " (" + out + ")";
}

std::string read_pem(const std::string& where, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw config::ConfigError(
        {fmt::format("{}: cannot read {}: {}", where, path, std::strerror(errno))});
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxPemBytes)
    throw config::ConfigError({fmt::format("{}: {} is not a PEM file ({} bytes; at most {})", where,
                                           path, size, kMaxPemBytes)});
  in.seekg(0);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string x509_name(X509_NAME* name) {
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof buf);
  return buf;
}

// "subject /CN=..., serial 0x02, expires Dec  6 01:20:09 2027 GMT".
std::string describe_cert(SSL_CTX* ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return "no certificate";
  std::string serial = "?";
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    char* hex = BN_bn2hex(bn);
    serial = hex;
    OPENSSL_free(hex);
    BN_free(bn);
  }
  std::string expires = "?";
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    ASN1_TIME_print(bio, X509_get0_notAfter(cert));
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    expires.assign(data, static_cast<size_t>(n));
    BIO_free(bio);
  }
  return fmt::format("subject {}, serial {}, expires {}", x509_name(X509_get_subject_name(cert)),
                     serial, expires);
}

std::shared_ptr<ssl::context> load(const config::TlsSpec& spec, const std::string& field) {
  const std::string cert_field = field + ".cert_file";
  const std::string key_field = field + ".key_file";
  const std::string cert = read_pem(cert_field, spec.cert_file);
  const std::string key = read_pem(key_field, spec.key_file);
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // An encrypted key fails here rather than OpenSSL asking for its passphrase on the terminal.
  SSL_CTX_set_default_passwd_cb(native, [](char*, int, int, void*) { return 0; });
  ERR_clear_error();
  boost::system::error_code ec;
  // The key first: set after the certificate, OpenSSL would refuse a mismatch as a bad key.
  ctx->use_private_key(boost::asio::buffer(key), ssl::context::pem, ec);
  if (ec)
    throw config::ConfigError({fmt::format("{}: {} holds no unencrypted PEM private key{}",
                                           key_field, spec.key_file, openssl_reason())});
  ctx->use_certificate_chain(boost::asio::buffer(cert), ec);
  if (ec)
    throw config::ConfigError({fmt::format("{}: {} holds no PEM certificate{}", cert_field,
                                           spec.cert_file, openssl_reason())});
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw config::ConfigError({fmt::format("{}: the key in {} does not match the certificate in {}",
                                           key_field, spec.key_file, spec.cert_file)});
  }
  return ctx;
}

}  // namespace

TlsCerts::TlsCerts(config::TlsSpec spec, std::string field)
    : spec_(std::move(spec)), field_(std::move(field)) {
  ctx_ = load(spec_, field_);
  about_ = describe_cert(ctx_->native_handle());
}

TlsCerts::~TlsCerts() = default;

std::shared_ptr<ssl::context> TlsCerts::current() const {
  const std::lock_guard lock(mu_);
  return ctx_;
}

std::string TlsCerts::describe() const {
  const std::lock_guard lock(mu_);
  return about_;
}

std::string TlsCerts::reload() {
  std::shared_ptr<ssl::context> fresh;
  try {
    fresh = load(spec_, field_);
  } catch (const config::ConfigError& e) {
    const std::string why = e.problems().empty() ? e.what() : e.problems().front();
    const std::lock_guard lock(mu_);
    return fmt::format("{}: kept the previous certificate ({}): {}", field_, about_, why);
  }
  std::string about = describe_cert(fresh->native_handle());
  const std::lock_guard lock(mu_);
  ctx_ = std::move(fresh);
  about_ = std::move(about);
  return fmt::format("{}: reloaded {}: {}", field_, spec_.cert_file, about_);
}

}  // namespace tide::gateway
