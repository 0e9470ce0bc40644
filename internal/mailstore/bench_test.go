package mailstore

import (
	"bytes"
	"testing"
	"time"
)

func benchBody() []byte {
	return append([]byte("Subject: benchmark\r\n\r\n"), bytes.Repeat([]byte("x"), 4<<10-22)...)
}

// BenchmarkDeliver: one caller delivering 4 KiB messages, each durable (fsync'd) on return.
func BenchmarkDeliver(b *testing.B) {
	s, _ := openTest(b)
	if err := s.CreateUser("bob", 0); err != nil {
		b.Fatal(err)
	}
	msg := benchBody()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := s.Deliver("bob", Inbox, msg, nil, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkDeliverParallel: 16 concurrent deliveries (as from the mixnet's mailbox service),
// which share commits through bbolt's Batch.
func BenchmarkDeliverParallel(b *testing.B) {
	s, _ := openTest(b)
	if err := s.CreateUser("bob", 0); err != nil {
		b.Fatal(err)
	}
	msg := benchBody()
	b.SetBytes(int64(len(msg)))
	b.SetParallelism(8)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Deliver("bob", Inbox, msg, nil, time.Time{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
