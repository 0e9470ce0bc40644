// Package replay owns the replay filter a mix node keeps for each Sphinx epoch key: every
// unwrap yields a 32-byte replay tag (docs/spec/sphinx.md §6, §9 step 4), and a node must
// drop a packet whose tag it has already seen under the same key. The filter is persisted,
// so that a restart inside an epoch does not reopen replays, and deleted with the key.
//
// # The filter
//
// A Bloom filter of m bits and k hash functions, sized by Size from a capacity n (the most
// tags the key will see: peak packet rate times the key's lifetime) and a target
// false-positive rate p, by the standard approximation
//
//	FP(m, k, n) = (1 - e^(-k*n/m))^k,  m ≈ -n*ln(p)/(ln 2)^2 ≈ 1.44*n*log2(1/p) bits,  k ≈ log2(1/p).
//
// Size picks the smaller of the filters for k = floor and ceil of log2(1/p), each with the
// smallest m (a multiple of 64) that reaches p. Memory is m/8 bytes, about 1.44*log2(1/p)
// bits per tag: for p = 1e-6, 28.8 bits (3.6 bytes) per tag, so a 20-minute epoch at 5,000 packets/s
// (n = 6 million) takes 21.6 MB, twice that while two keys overlap.
//
// A false positive drops an honest packet (the filter has no false negatives, so a replay
// is always caught). The bit indices come from HMAC-SHA256 of the tag under a random key
// per filter, stored in its file, by double hashing. A packet's creator knows its tags but
// not the key, so cannot grind tags that collide in this filter; to a sender every tag
// costs one packet and lands on random bits.
//
// Past n tags the false-positive rate rises above p. Stats reports Load (tags held over
// capacity), Fill (fraction of bits set) and FalsePositiveRate (Fill^k, the current rate for
// a fresh tag), for the node's metrics. At OverfillFactor (2) times the capacity, where a
// filter sized for p = 1e-6 is at about 3e-3, Add refuses fresh tags with ErrFull: the
// node drops the packets, which is safe, rather than let the rate keep climbing.
//
// # The file
//
// One append-only file per filter: a 76-byte header (magic "PXREPLAY", version 1, record
// size, k, epoch, n, m, the HMAC key, CRC-32C of the header), then one 36-byte record per
// fresh tag (the tag and its CRC-32C), in the order the tags were added; the layout is
// spelled out in file.go. Open loads a file by re-inserting every record into an empty
// filter of the header's shape, which rebuilds the bit array exactly; each record must be
// fresh when re-inserted, as it was when first added. Keeping tags rather than the bit array
// makes each durable write an append of a few records rather than a rewrite of megabytes;
// the price is 36 bytes of disk per tag (216 MB for a 6-million-tag epoch) and a reload that
// rehashes every tag (see docs/BENCHMARKS.md).
//
// Open is strict: a short header, bad magic, unknown version, bad checksum, parameters past
// the hard limits (MaxCapacity, MaxBits, MaxHashes, 1 to 64 bits per tag), more records than
// OverfillFactor*capacity, a repeated tag, or an invalid record anywhere but in the torn
// tail, all make Open fail with ErrCorrupt; a file of another epoch fails with
// ErrWrongEpoch. The file is then left as it is. A new file is created atomically (written
// under a temporary name, fsynced, renamed, directory fsynced), so a crash never leaves a
// half-written header.
//
// Torn tail. Between two fsyncs the filter appends at most 1,820 records (65,520 bytes), so
// after a crash only the last 65,520 bytes of a file can hold records that were never
// durable, and the kernel may have persisted them partly, out of order, or as zeros. Open
// therefore truncates the file at the first invalid record (bad checksum, or a partial
// record at the end) if that record lies within the last 65,520 bytes, dropping it and
// everything after it; none of those records was reported durable, so no replay reopens.
// An invalid record further from the end is corrupt durable data and an error.
//
// # Durability
//
// A node must not forward a packet whose tag is not yet durable: after a crash the tag
// would be forgotten and the replayed packet forwarded a second time. Add tests and inserts
// in memory, atomically, and buffers the record; Sync writes and fsyncs everything buffered
// (group commit: concurrent callers share the write and the fsync). Each fresh tag gets a
// Seq from AddSeq, and WaitDurable(ctx, seq) returns once that record is on disk. Since
// packets wait a random delay before being forwarded, a mix calls AddSeq when it unwraps a
// packet and WaitDurable when the delay ends; with Run active (a background syncer that
// writes every interval and at once when someone waits), the record is usually durable by
// then and WaitDurable returns without blocking. AddAndWait does both in one call. A
// packet dropped because of a crash before its record was durable was never forwarded, so
// forgetting its tag is safe.
//
// A failed write or fsync leaves the file in an unknown state (after a failed fsync the
// kernel may drop dirty pages and forget the error), so the filter fails closed: every
// later Add, Sync and WaitDurable returns the error and the node must drop the key's
// packets until it restarts and reopens the file, which truncates whatever tail the failure
// left.
//
// A mix's use, per epoch key: Open when the key is loaded (the file name naming the epoch),
// start Run in a goroutine, call AddSeq after the packet's header MAC verifies and
// WaitDurable before forwarding it, and when the key is erased cancel Run and call Remove.
//
// Close syncs and closes; Remove deletes the file (and closes without syncing) when the
// epoch key is erased. A Filter is safe for concurrent use; one file must be opened by one
// Filter at a time.
package replay
