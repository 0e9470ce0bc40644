package store

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store/storetest"
)

// benchStore opens a store with the test survey, for each driver.
func benchBackends(b *testing.B, f func(b *testing.B, s *Store, sv *survey.Signed)) {
	run := func(b *testing.B, driver, dsn string) {
		s, err := Open(context.Background(), driver, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sv, _ := signedSurvey(b, "bench")
		if err := s.OpenSurvey(context.Background(), sv); err != nil {
			b.Fatal(err)
		}
		f(b, s, sv)
	}
	b.Run("sqlite", func(b *testing.B) { run(b, SQLite, filepath.Join(b.TempDir(), "b.db")) })
	b.Run("postgres", func(b *testing.B) { run(b, Postgres, storetest.StartPostgres(b)) })
}

// benchItem is submission i of the test survey, with a unique id.
func benchItem(b *testing.B, sv *survey.Signed, i int) Item {
	it := item(b, sv, 0, int64(i%3), int64(i%181), int64(i%2), int64(i%1006))
	binary.BigEndian.PutUint64(it.Submission.ID[8:], uint64(i))
	binary.BigEndian.PutUint64(it.Submission.ID[:8], uint64(time.Now().UnixNano()))
	raw, _ := it.Submission.Marshal()
	it.Raw = raw
	return it
}

// BenchmarkInsert is the durable insert rate of the storage layer alone: one submission (four
// answers) per transaction and commit.
func BenchmarkInsert(b *testing.B) {
	benchBackends(b, func(b *testing.B, s *Store, sv *survey.Signed) {
		items := make([]Item, b.N)
		for i := range items {
			items[i] = benchItem(b, sv, i)
		}
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			if r, err := s.Insert(ctx, items[i]); err != nil || r != Inserted {
				b.Fatal(r, err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submissions/s")
	})
}

// BenchmarkInsertBatch is the insert rate with group commit: 64 submissions per transaction,
// as the survey service batches concurrent deliveries.
func BenchmarkInsertBatch(b *testing.B) {
	const batch = 64
	benchBackends(b, func(b *testing.B, s *Store, sv *survey.Signed) {
		items := make([]Item, b.N)
		for i := range items {
			items[i] = benchItem(b, sv, i)
		}
		ctx := context.Background()
		b.ResetTimer()
		for lo := 0; lo < b.N; lo += batch {
			if _, err := s.InsertBatch(ctx, items[lo:min(lo+batch, b.N)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submissions/s")
	})
}
