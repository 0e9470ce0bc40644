// Package trace is the privacy measurement's ground truth (issue 14): which packet a node took
// in, which it sent out for it, what a provider delivered, and which packets a client wrote. Only
// builds with the tag privacytrace record anything (mixd/internal/node and pkg/client each have
// a trace_privacytrace.go and a no-op trace_default.go); a release build does not link this
// package at all (hygiene test in mixd/internal/node and pkg/client).
//
// A packet's id is a hash of its bytes as they are on one hop, so the id a sender records for
// what it wrote is the id the next hop records for what it took in. Records are JSON lines, one
// write each, appended to a file per process: the name in PANORAMIX_PRIVACY_TRACE with ".PID"
// added, so many processes of one network can share the setting.
package trace

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// EnvFile names the environment variable that switches tracing on.
const EnvFile = "PANORAMIX_PRIVACY_TRACE"

// Events of a Record.
const (
	EvSend    = "send"    // a client wrote packet Out (User, Kind)
	EvReceive = "recv"    // Node took in packet In (Client: from a client link) and scheduled it
	EvEmit    = "emit"    // Node sent out Out for its input In
	EvMade    = "made"    // Node sent out Out that it made itself (a mix's loop)
	EvDeliver = "deliver" // packet In ended at Node (Service, Recipient, SURB: a reply to a SURB)
	EvReply   = "reply"   // Node answered its last delivery with Out through the packet's SURB
)

// Kinds of packets a client writes.
const (
	KindReal = "real" // a fragment of a real message
	KindDrop = "drop" // a drop, on the lambda_P stream with nothing due or on lambda_D
	KindLoop = "loop" // a loop (lambda_L)
)

// Record is one line of a trace file.
type Record struct {
	At        int64  `json:"t"` // Unix nanoseconds
	Ev        string `json:"ev"`
	Node      string `json:"node,omitempty"`
	User      string `json:"user,omitempty"`
	Kind      string `json:"kind,omitempty"`
	In        ID     `json:"in,omitempty"`
	Out       ID     `json:"out,omitempty"`
	Client    bool   `json:"client,omitempty"`
	Service   string `json:"svc,omitempty"`
	Recipient string `json:"rcpt,omitempty"`
	SURB      bool   `json:"surb,omitempty"`
}

// ID is a packet id: the first 8 bytes of the SHA-256 of the packet as it is on one hop.
// Collisions among the 10^6 packets of a run have probability below 10^-7.
type ID uint64

// PacketID hashes a packet.
func PacketID(pkt []byte) ID {
	h := sha256.Sum256(pkt)
	return ID(binary.BigEndian.Uint64(h[:8]))
}

// Writer appends records to one file.
type Writer struct {
	mu  sync.Mutex
	f   *os.File
	buf []byte
}

// Open opens the trace file named by PANORAMIX_PRIVACY_TRACE (with ".PID" added); nil, nil when
// the variable is not set.
func Open() (*Writer, error) {
	name := os.Getenv(EnvFile)
	if name == "" {
		return nil, nil
	}
	f, err := os.OpenFile(name+"."+strconv.Itoa(os.Getpid()), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	return &Writer{f: f}, nil
}

// Write appends one record; a nil Writer does nothing. Errors are dropped: tracing must not
// change what the node does.
func (w *Writer) Write(r Record) {
	if w == nil {
		return
	}
	if r.At == 0 {
		r.At = time.Now().UnixNano()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	w.buf = append(append(w.buf[:0], b...), '\n')
	_, _ = w.f.Write(w.buf)
}

// MaxLine bounds one line of a trace file when reading it back.
const MaxLine = 4096

// Read calls fn for every record of a trace file, in file order.
func Read(r io.Reader, fn func(Record) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, MaxLine), MaxLine)
	line := 0
	for sc.Scan() {
		line++
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return fmt.Errorf("trace: line %d: %w", line, err)
		}
		if rec.Ev == "" || rec.At <= 0 {
			return fmt.Errorf("trace: line %d: %w", line, errIncomplete)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("trace: line %d: %w", line+1, err)
	}
	return nil
}

var errIncomplete = errors.New("record without event or time")

// MarshalText writes an id as 16 hex digits (JSON numbers above 2^53 lose bits in many readers).
func (id ID) MarshalText() ([]byte, error) {
	return []byte(fmt.Sprintf("%016x", uint64(id))), nil
}

// UnmarshalText reads 16 hex digits.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != 16 {
		return fmt.Errorf("trace: packet id %q: want 16 hex digits", b)
	}
	v, err := strconv.ParseUint(string(b), 16, 64)
	if err != nil {
		return fmt.Errorf("trace: packet id: %w", err)
	}
	*id = ID(v)
	return nil
}
