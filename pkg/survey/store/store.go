package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"

	"github.com/panoramix-mixnet/panoramix/pkg/dp"
	"github.com/panoramix-mixnet/panoramix/pkg/survey"
)

// Drivers.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Errors of the store; test with errors.Is.
var (
	ErrUnknownSurvey = errors.New("store: no such survey")
	ErrClosed        = errors.New("store: survey closed")
	ErrExists        = errors.New("store: another survey has that name")
)

// Store is an open survey database. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	driver string
	now    func() time.Time
}

// sqlitePragmas make every commit durable (WAL synced at each commit) and let mixctl and mixd
// share the file.
const sqlitePragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"

// Open opens (creating and migrating as needed) the database: for SQLite, dsn is a file path;
// for PostgreSQL a pgx connection string ("postgres://..." or "host=... dbname=...").
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	var db *sql.DB
	var err error
	switch driver {
	case SQLite:
		if dsn == "" || strings.ContainsAny(dsn, "?#") {
			return nil, fmt.Errorf("store: sqlite path %q: want a file path", dsn)
		}
		// The file holds every submission: its owner's alone. SQLite would create it with the
		// process's umask (0644 usually) and give its WAL and shared-memory files that mode.
		f, ferr := os.OpenFile(dsn, os.O_RDWR|os.O_CREATE, 0o600)
		if ferr != nil {
			return nil, fmt.Errorf("store: sqlite %s: %w", dsn, ferr)
		}
		f.Close()
		db, err = sql.Open("sqlite", "file:"+dsn+"?"+sqlitePragmas)
		if err == nil {
			// One writer at a time is all SQLite does; one connection avoids lock upgrades.
			db.SetMaxOpenConns(1)
		}
	case Postgres:
		if dsn == "" {
			return nil, errors.New("store: postgres needs a dsn")
		}
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(8)
		}
	default:
		return nil, fmt.Errorf("store: database %q: want %q or %q", driver, SQLite, Postgres)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", driver, err)
	}
	s := &Store{db: db, driver: driver, now: time.Now}
	err = db.PingContext(ctx)
	// Switching a new SQLite connection to WAL needs a moment of exclusive access and answers
	// SQLITE_BUSY at once, without waiting out busy_timeout, while another process opens the
	// same file: retry the connection for a bounded time.
	for deadline := time.Now().Add(10 * time.Second); err != nil && driver == SQLite &&
		strings.Contains(err.Error(), "SQLITE_BUSY") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		err = db.PingContext(ctx)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", driver, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if driver == SQLite {
		// A database made by an older version (0644), and its WAL and shared-memory files,
		// which exist now that the connection is open.
		for _, p := range []string{dsn, dsn + "-wal", dsn + "-shm"} {
			if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
				db.Close()
				return nil, fmt.Errorf("store: sqlite %s: %w", p, err)
			}
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Driver returns SQLite or Postgres.
func (s *Store) Driver() string { return s.driver }

// q adapts a query written with ? placeholders to the driver.
func (s *Store) q(query string) string {
	if s.driver != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// migrations are applied in order, each once, in its own transaction. {blob} and {int} are the
// driver's byte-string and 64-bit integer types. Never edit one: add another.
var migrations = []string{
	`CREATE TABLE surveys (
		name TEXT PRIMARY KEY,
		survey_id {blob} NOT NULL UNIQUE,
		signed {blob} NOT NULL,
		budget {int} NOT NULL,
		spent {int} NOT NULL DEFAULT 0,
		closed {int} NOT NULL DEFAULT 0,
		opened_at {int} NOT NULL
	);
	CREATE TABLE submissions (
		survey TEXT NOT NULL REFERENCES surveys(name),
		submission_id {blob} NOT NULL,
		received_at {int} NOT NULL,
		raw {blob} NOT NULL,
		PRIMARY KEY (survey, submission_id)
	);
	CREATE TABLE answers (
		survey TEXT NOT NULL,
		submission_id {blob} NOT NULL,
		question {int} NOT NULL,
		value {int} NOT NULL,
		PRIMARY KEY (survey, submission_id, question),
		FOREIGN KEY (survey, submission_id) REFERENCES submissions(survey, submission_id)
	);
	CREATE INDEX answers_question ON answers (survey, question, value);
	CREATE TABLE releases (
		survey TEXT NOT NULL REFERENCES surveys(name),
		seq {int} NOT NULL,
		released_at {int} NOT NULL,
		kind TEXT NOT NULL,
		question TEXT NOT NULL,
		epsilon {int} NOT NULL,
		result TEXT NOT NULL,
		PRIMARY KEY (survey, seq)
	)`,
}

// migrationLock is the PostgreSQL advisory lock key that serialises migrations ("PXSV").
const migrationLock = "1347965782"

func (s *Store) migrate(ctx context.Context) error {
	blob, integer := "BLOB", "INTEGER"
	if s.driver == Postgres {
		blob, integer = "BYTEA", "BIGINT"
	}
	for i, m := range migrations {
		version := i + 1
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if s.driver == Postgres {
				// Processes migrating one database at once (two providers sharing it) take
				// turns: even CREATE TABLE IF NOT EXISTS races in PostgreSQL.
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+migrationLock+`)`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version `+integer+` PRIMARY KEY, applied_at `+integer+` NOT NULL)`); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			sqlText := strings.NewReplacer("{blob}", blob, "{int}", integer).Replace(m)
			for _, stmt := range strings.Split(sqlText, ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), version, s.now().Unix())
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %d: %w", version, err)
		}
	}
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if newest > len(migrations) {
		return fmt.Errorf("store: database schema version %d is newer than this program's %d: upgrade the program", newest, len(migrations))
	}
	return nil
}

// SchemaVersion is the version the migrations bring a database to.
func SchemaVersion() int { return len(migrations) }

func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// OpenSurvey records a signed survey so that the service accepts submissions to it. Opening
// the same survey again does nothing; opening another survey under a taken name is ErrExists.
func (s *Store) OpenSurvey(ctx context.Context, sv *survey.Signed) error {
	id := sv.ID()
	return s.tx(ctx, func(tx *sql.Tx) error {
		var have []byte
		err := tx.QueryRowContext(ctx, s.q(`SELECT survey_id FROM surveys WHERE name = ?`), sv.Definition.Name).Scan(&have)
		switch {
		case err == nil && string(have) == string(id[:]):
			return nil
		case err == nil:
			return fmt.Errorf("%w: %q", ErrExists, sv.Definition.Name)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: look up survey: %w", err)
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO surveys (name, survey_id, signed, budget, opened_at) VALUES (?, ?, ?, ?, ?)`),
			sv.Definition.Name, id[:], sv.Marshal(), int64(sv.Definition.Budget), s.now().Unix())
		if err != nil {
			return fmt.Errorf("store: open survey: %w", err)
		}
		return nil
	})
}

// CloseSurvey stops the survey's collection: later submissions are refused.
func (s *Store) CloseSurvey(ctx context.Context, name string) error {
	r, err := s.db.ExecContext(ctx, s.q(`UPDATE surveys SET closed = 1 WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("store: close survey: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %q", ErrUnknownSurvey, name)
	}
	return nil
}

// Info is what the store knows of a survey.
type Info struct {
	Signed      *survey.Signed
	Closed      bool
	Budget      dp.Epsilon
	Spent       dp.Epsilon
	Submissions int64
	OpenedAt    time.Time
}

// Remaining is the budget not yet spent.
func (i *Info) Remaining() dp.Epsilon { return i.Budget - i.Spent }

// Survey returns a survey's record, or ErrUnknownSurvey.
func (s *Store) Survey(ctx context.Context, name string) (*Info, error) {
	var raw []byte
	var budget, spent, closed, opened int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT signed, budget, spent, closed, opened_at FROM surveys WHERE name = ?`), name).Scan(&raw, &budget, &spent, &closed, &opened)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownSurvey, name)
	}
	if err != nil {
		return nil, fmt.Errorf("store: read survey: %w", err)
	}
	sv, err := survey.ParseSigned(raw)
	if err != nil {
		return nil, fmt.Errorf("store: stored survey %q: %w", name, err)
	}
	info := &Info{Signed: sv, Closed: closed != 0, Budget: dp.Epsilon(budget), Spent: dp.Epsilon(spent), OpenedAt: time.Unix(opened, 0)}
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM submissions WHERE survey = ?`), name).Scan(&info.Submissions); err != nil {
		return nil, fmt.Errorf("store: count submissions: %w", err)
	}
	return info, nil
}

// Surveys lists the survey names.
func (s *Store) Surveys(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM surveys ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list surveys: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Item is one submission to insert.
type Item struct {
	Survey     string
	Submission *survey.Submission
	// Raw is the submission's encoding, kept for audit and export.
	Raw        []byte
	ReceivedAt time.Time
}

// Result is what became of one Item.
type Result int

// Results of InsertBatch.
const (
	Inserted  Result = iota // stored now
	Duplicate               // already stored (same survey and submission id): nothing changed
	Unknown                 // no such survey
	Closed                  // the survey is closed
)

func (r Result) String() string {
	return [...]string{"inserted", "duplicate", "unknown survey", "closed"}[r]
}

// insertChunk bounds the rows of one multi-row INSERT (SQLite allows 32,766 parameters).
const insertChunk = 256

// InsertBatch stores the items in one transaction (so they share its commit) and returns what
// became of each. Items refused or duplicated change nothing. When it returns without error
// every Inserted item is durable. The caller validates each submission against its survey
// first.
func (s *Store) InsertBatch(ctx context.Context, items []Item) ([]Result, error) {
	res := make([]Result, len(items))
	err := s.tx(ctx, func(tx *sql.Tx) error {
		state := map[string]Result{}
		type key struct {
			survey string
			id     survey.SubmissionID
		}
		first := map[key]int{} // the item that inserts each (survey, id) of the batch
		var todo []int
		for i, it := range items {
			st, ok := state[it.Survey]
			if !ok {
				var closed int64
				err := tx.QueryRowContext(ctx, s.q(`SELECT closed FROM surveys WHERE name = ?`), it.Survey).Scan(&closed)
				switch {
				case errors.Is(err, sql.ErrNoRows):
					st = Unknown
				case err != nil:
					return err
				case closed != 0:
					st = Closed
				default:
					st = Inserted
				}
				state[it.Survey] = st
			}
			sub := it.Submission
			if st == Closed {
				// A retransmission of a submission stored before the survey closed is still
				// a duplicate: its sender must learn it was stored.
				var n int
				if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM submissions WHERE survey = ? AND submission_id = ?`), it.Survey, sub.ID[:]).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					res[i] = Duplicate
					continue
				}
			}
			if st != Inserted {
				res[i] = st
				continue
			}
			k := key{it.Survey, sub.ID}
			if _, dup := first[k]; dup {
				res[i] = Duplicate
				continue
			}
			first[k] = i
			res[i] = Duplicate // until the INSERT says it inserted the row
			todo = append(todo, i)
		}
		for lo := 0; lo < len(todo); lo += insertChunk {
			chunk := todo[lo:min(lo+insertChunk, len(todo))]
			var q strings.Builder
			args := make([]any, 0, 4*len(chunk))
			q.WriteString(`INSERT INTO submissions (survey, submission_id, received_at, raw) VALUES `)
			for j, i := range chunk {
				if j > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?, ?, ?)")
				it := items[i]
				args = append(args, it.Survey, it.Submission.ID[:], it.ReceivedAt.Unix(), it.Raw)
			}
			q.WriteString(` ON CONFLICT DO NOTHING RETURNING survey, submission_id`)
			rows, err := tx.QueryContext(ctx, s.q(q.String()), args...)
			if err != nil {
				return err
			}
			var inserted []int
			for rows.Next() {
				var k key
				var id []byte
				if err := rows.Scan(&k.survey, &id); err != nil {
					rows.Close()
					return err
				}
				copy(k.id[:], id)
				i, ok := first[k]
				if !ok {
					rows.Close()
					return fmt.Errorf("insert returned a submission %x it was not given", id)
				}
				res[i] = Inserted
				inserted = append(inserted, i)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if err := s.insertAnswers(ctx, tx, items, inserted); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: insert submissions: %w", err)
	}
	return res, nil
}

// insertAnswers inserts the answer rows of items[i] for i in which, in multi-row statements.
func (s *Store) insertAnswers(ctx context.Context, tx *sql.Tx, items []Item, which []int) error {
	var q strings.Builder
	var args []any
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, s.q(q.String()), args...)
		q.Reset()
		args = args[:0]
		return err
	}
	for _, i := range which {
		it := items[i]
		for qi, a := range it.Submission.Answers {
			if len(args) == 0 {
				q.WriteString(`INSERT INTO answers (survey, submission_id, question, value) VALUES (?, ?, ?, ?)`)
			} else {
				q.WriteString(", (?, ?, ?, ?)")
			}
			args = append(args, it.Survey, it.Submission.ID[:], qi, a.Value)
			if len(args) >= 4*insertChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// Insert stores one submission: InsertBatch of one item.
func (s *Store) Insert(ctx context.Context, it Item) (Result, error) {
	r, err := s.InsertBatch(ctx, []Item{it})
	if err != nil {
		return 0, err
	}
	return r[0], nil
}

// Has reports whether a submission is stored.
func (s *Store) Has(ctx context.Context, name string, id survey.SubmissionID) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM submissions WHERE survey = ? AND submission_id = ?`), name, id[:]).Scan(&n); err != nil {
		return false, fmt.Errorf("store: look up submission: %w", err)
	}
	return n > 0, nil
}

// Row is one stored submission.
type Row struct {
	ID         survey.SubmissionID
	ReceivedAt time.Time
	// Values holds one value per question, in question order.
	Values []int64
}

// Rows calls f for every stored submission of the survey, in submission id order.
func (s *Store) Rows(ctx context.Context, name string, f func(*Row) error) error {
	info, err := s.Survey(ctx, name)
	if err != nil {
		return err
	}
	nq := len(info.Signed.Definition.Questions)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT s.submission_id, s.received_at, a.question, a.value FROM submissions s JOIN answers a ON a.survey = s.survey AND a.submission_id = s.submission_id WHERE s.survey = ? ORDER BY s.submission_id, a.question`), name)
	if err != nil {
		return fmt.Errorf("store: read rows: %w", err)
	}
	defer rows.Close()
	var cur *Row
	flush := func() error {
		if cur == nil {
			return nil
		}
		if len(cur.Values) != nq {
			return fmt.Errorf("store: submission %s has %d answers, want %d", cur.ID, len(cur.Values), nq)
		}
		return f(cur)
	}
	for rows.Next() {
		var id []byte
		var at, q, v int64
		if err := rows.Scan(&id, &at, &q, &v); err != nil {
			return fmt.Errorf("store: read rows: %w", err)
		}
		if cur == nil || string(cur.ID[:]) != string(id) {
			if err := flush(); err != nil {
				return err
			}
			cur = &Row{ReceivedAt: time.Unix(at, 0)}
			copy(cur.ID[:], id)
		}
		if q != int64(len(cur.Values)) {
			return fmt.Errorf("store: submission %s: answer %d out of order", cur.ID, q)
		}
		cur.Values = append(cur.Values, v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("store: read rows: %w", err)
	}
	return flush()
}
