// Every limit the gRPC server puts on a client, in one place. A CRI socket is root-only, but a
// buggy or compromised client must still not be able to take the node's runtime down: each
// limit bounds memory or work per connection, and crossing it costs the client its call or its
// connection, never the daemon.
#pragma once

#include <cstddef>
#include <cstdint>

namespace monocri::grpc {

// Largest request or response message: kubelet's own limit for CRI messages (16 MiB). A longer
// request is refused from its 5-byte prefix with RESOURCE_EXHAUSTED, without buffering it.
inline constexpr size_t kMaxMessageBytes = 16 * 1024 * 1024;

// Request bytes a connection may hold at once, counted as the declared lengths of the messages
// of calls not finished yet. A message that does not fit waits: its stream gets no
// WINDOW_UPDATE until earlier calls finish, so slow handlers push back on the client.
// Twice the message limit, so one maximum-size request always fits beside another.
inline constexpr size_t kMaxReservedRequestBytesPerConnection = 2 * kMaxMessageBytes;

// Flow-control windows we advertise. Unconsumed bytes of waiting streams are bounded by the
// connection window.
inline constexpr int32_t kStreamInitialWindowBytes = 256 * 1024;
inline constexpr int32_t kConnectionWindowBytes = 1024 * 1024;

// Concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS). kubelet keeps a handful
// in flight; more are refused with REFUSED_STREAM, which gRPC clients retry.
inline constexpr uint32_t kMaxConcurrentStreams = 1000;

// Request header block per stream (SETTINGS_MAX_HEADER_LIST_SIZE): CRI requests carry about
// 300 bytes of headers; a larger block resets the stream.
inline constexpr uint32_t kMaxRequestHeaderListBytes = 16 * 1024;

// Queued outbound control-frame ACKs (answers to PING and SETTINGS): a client that floods
// PINGs without reading the answers is disconnected by nghttp2 (NGHTTP2_ERR_FLOODED).
inline constexpr size_t kMaxOutboundAcks = 1000;

// Entries in one SETTINGS frame; a real client sends at most 6.
inline constexpr size_t kMaxSettingsEntries = 32;

// CONTINUATION frames for one header block (CVE-2024-27316 class of floods).
inline constexpr size_t kMaxContinuations = 8;

// Streams a client may reset per interval before the connection is dropped (the "rapid reset"
// flood, CVE-2023-44487): a token bucket of this burst, refilled at this rate per second.
inline constexpr uint64_t kStreamResetBurst = 1000;
inline constexpr uint64_t kStreamResetRatePerSecond = 100;

// Response bytes handed to the socket but not yet written. Past it the connection stops
// reading requests and producing frames until the client reads.
inline constexpr size_t kMaxPendingWriteBytes = 1024 * 1024;

// Open connections. kubelet uses two; each extra one costs a socket and a session.
inline constexpr size_t kMaxConnections = 1024;

// A connection must complete the HTTP/2 handshake (preface and SETTINGS) in this time.
inline constexpr uint64_t kHandshakeTimeoutMs = 10'000;

}  // namespace monocri::grpc
