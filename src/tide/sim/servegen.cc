// The ServeGen client-window archive: a (zstd-compressed) tar of per-client CSV files.
#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>

#include "tide/sim/arrivals.h"

namespace tide::sim {
namespace {

constexpr size_t kMaxArchiveBytes = size_t{1} << 30;  // decompressed; the real one is 28 MiB

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TraceError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string decompress(const std::string& path, const std::string& packed) {
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{packed.data(), packed.size(), 0};
  size_t ret = 1;
  for (;;) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    ret = ZSTD_decompressStream(dctx.get(), &o, &in);
    if (ZSTD_isError(ret))
      throw TraceError(fmt::format("{}: corrupt zstd data: {}", path, ZSTD_getErrorName(ret)));
    out.append(buf.data(), o.pos);
    if (out.size() > kMaxArchiveBytes)
      throw TraceError(
          fmt::format("{}: more than {} MiB decompressed", path, kMaxArchiveBytes >> 20));
    if (in.pos == in.size && o.pos < buf.size()) break;  // all input read, nothing held back
  }
  if (ret != 0) throw TraceError(fmt::format("{}: truncated zstd data", path));
  return out;
}

bool parse_number(std::string_view s, double& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// One CSV row: window_start_s, rate, cv, distribution, param1, param2.
ClientWindow parse_row(std::string_view line, const std::string& where) {
  std::vector<std::string_view> f;
  size_t start = 0;
  for (size_t comma; (comma = line.find(',', start)) != std::string_view::npos; start = comma + 1)
    f.push_back(line.substr(start, comma - start));
  f.push_back(line.substr(start));
  if (f.size() != 6)
    throw TraceError(fmt::format("{}: expected 6 fields, got {}", where, f.size()));
  ClientWindow w;
  double cv = 0;
  if (!parse_number(f[0], w.start_s) || !parse_number(f[1], w.rate) || !parse_number(f[2], cv) ||
      !parse_number(f[4], w.shape) || !parse_number(f[5], w.scale))
    throw TraceError(fmt::format("{}: a field is not a number", where));
  if (!(w.start_s >= 0) || !(w.rate >= 0) || w.rate > 1e6)
    throw TraceError(fmt::format("{}: window start or rate out of range", where));
  if (f[3] == "Gamma") {
    w.dist = ClientWindow::Dist::kGamma;
  } else if (f[3] == "Weibull") {
    w.dist = ClientWindow::Dist::kWeibull;
  } else if (!f[3].empty()) {
    throw TraceError(
        fmt::format("{}: unknown distribution \"{}\" (Gamma, Weibull or empty)", where, f[3]));
  }
  // Shapes far below these give gaps of 0 or infinity in double precision.
  if (w.dist != ClientWindow::Dist::kNone && !(w.shape >= 1e-3 && w.shape <= 1e5 && w.scale > 0))
    throw TraceError(fmt::format("{}: shape must be in [0.001, 100000] and scale > 0", where));
  return w;
}

ClientWindows parse_member(std::string_view text, const std::string& where) {
  ClientWindows c;
  c.name = where;
  size_t line_no = 0;
  for (size_t start = 0; start < text.size();) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string at = fmt::format("{}:{}", where, line_no);
    c.windows.push_back(parse_row(line, at));
    if (c.windows.size() > 1 && c.windows.back().start_s <= c.windows[c.windows.size() - 2].start_s)
      throw TraceError(at + ": window starts must increase");
  }
  return c;
}

uint64_t octal(std::string_view s) {
  uint64_t v = 0;
  for (char ch : s) {
    if (ch == '\0' || ch == ' ') break;
    if (ch < '0' || ch > '7') return UINT64_MAX;
    v = v * 8 + static_cast<uint64_t>(ch - '0');
  }
  return v;
}

}  // namespace

std::vector<ClientWindows> load_client_windows(const std::string& archive,
                                               const std::string& model) {
  std::string tar = read_file(archive);
  if (archive.size() > 4 && archive.ends_with(".zst")) tar = decompress(archive, tar);
  std::vector<ClientWindows> out;
  std::set<std::string> models;
  const std::string want = "/" + model + "/";
  for (size_t pos = 0; pos + 512 <= tar.size();) {
    const std::string_view h(tar.data() + pos, 512);
    if (h[0] == '\0') break;  // end-of-archive blocks
    const std::string name(h.substr(0, h.substr(0, 100).find('\0')));
    const std::string prefix(h.substr(345, h.substr(345, 155).find('\0')));
    const std::string path = prefix.empty() ? name : prefix + "/" + name;
    const uint64_t size = octal(h.substr(124, 12));
    if (size == UINT64_MAX || size > tar.size() - pos - 512)
      throw TraceError(fmt::format("{}: {}: bad tar header", archive, path));
    const std::string_view body(tar.data() + pos + 512, size);
    pos += 512 + (size + 511) / 512 * 512;
    if (h[156] != '0' && h[156] != '\0') continue;  // not a regular file
    if (!path.ends_with("-trace.csv")) continue;
    const size_t slash = path.rfind('/');
    const size_t before =
        slash == std::string::npos ? std::string::npos : path.rfind('/', slash - 1);
    if (before != std::string::npos) models.insert(path.substr(before + 1, slash - before - 1));
    if (path.find(want) == std::string::npos) continue;
    out.push_back(parse_member(body, archive + ": " + path));
  }
  if (out.empty()) {
    std::string names;
    for (const auto& m : models) names += (names.empty() ? "" : ", ") + m;
    throw TraceError(
        fmt::format("{}: no client files of model \"{}\" (models: {})", archive, model, names));
  }
  // Members in a fixed order whatever the archive's order: chunk number.
  auto chunk = [](const std::string& n) {
    const size_t p = n.rfind("chunk-");
    return p == std::string::npos ? 0 : std::atol(n.c_str() + p + 6);
  };
  std::sort(out.begin(), out.end(), [&](const ClientWindows& a, const ClientWindows& b) {
    return chunk(a.name) < chunk(b.name);
  });
  return out;
}

}  // namespace tide::sim
