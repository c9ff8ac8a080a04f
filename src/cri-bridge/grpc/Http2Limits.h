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

// Request bytes a connection may hold at once, counted as the declared lengths (with their
// 5-byte prefixes) of the messages of calls not finished yet. A message that does not fit
// waits: its stream gets no WINDOW_UPDATE until earlier calls finish, so slow handlers push back
// on the client. Room for two maximum-size requests side by side.
inline constexpr size_t kMaxReservedRequestBytesPerConnection = 2 * (kMaxMessageBytes + 5);

// The same, over all connections together: the daemon's bound on request memory.
inline constexpr size_t kMaxReservedRequestBytesTotal = 4 * (kMaxMessageBytes + 5);

// Calls of one connection that may wait for request budget. A waiting call holds at most its
// stream window unconsumed; past this many, a new one is refused with RESOURCE_EXHAUSTED.
inline constexpr size_t kMaxWaitingCallsPerConnection = 8;

// Flow-control windows we advertise. A waiting call's bytes are released at once at the
// connection level (other calls must not starve behind it) and held at its stream level.
inline constexpr int32_t kStreamInitialWindowBytes = 256 * 1024;
inline constexpr int32_t kConnectionWindowBytes = 1024 * 1024;

// Concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS). kubelet keeps a handful
// in flight; more are refused with REFUSED_STREAM, which gRPC clients retry.
inline constexpr uint32_t kMaxConcurrentStreams = 1000;

// Open calls over all connections (the request headers of each are kept while it runs). More
// are refused with REFUSED_STREAM.
inline constexpr size_t kMaxOpenCallsTotal = 4096;

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

// A request must arrive in full (headers, message, END_STREAM) in this time, deadline or not:
// kubelet's requests are a few hundred bytes, and a client that trickles or never finishes one
// must not hold its memory forever. (GrpcServer::Options can change it, for tests.)
inline constexpr uint64_t kRequestReceiveTimeoutMs = 60'000;

// After the shutdown grace period, connections get this long to write their last frames; a
// client that does not read them is disconnected.
inline constexpr uint64_t kShutdownDrainMs = 1'000;

// A connection closing after its last writes waits at most this long for the peer to read them.
inline constexpr uint64_t kCloseDrainTimeoutMs = 5'000;

}  // namespace monocri::grpc
