// The hop-by-hop rules of a proxy (RFC 9110 7.6.1): which fields describe one connection, not the
// message, and so are never passed on. Beast's field names: included by the gateway's parsers and
// the relay (relay.h).
#pragma once

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>

namespace tide::net {

// Fields that describe one hop, not the message.
inline bool hop_by_hop(boost::beast::http::field f) {
  using boost::beast::http::field;
  switch (f) {
    case field::connection:
    case field::keep_alive:
    case field::proxy_connection:
    case field::te:
    case field::trailer:
    case field::upgrade:
    case field::proxy_authorization:
      return true;
    default:
      return false;
  }
}

inline void strip_hop_by_hop(boost::beast::http::fields& f) {
  using boost::beast::http::field;
  for (auto name : {field::connection, field::keep_alive, field::proxy_connection, field::te,
                    field::trailer, field::upgrade, field::proxy_authorization}) {
    f.erase(name);
  }
}

}  // namespace tide::net
