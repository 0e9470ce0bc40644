// Package store owns the aggregator's survey database (docs/spec/survey.md sections 5.1 and 7):
// the signed surveys it collects for, the submissions that arrived through the mixnet, and the
// releases charged to each survey's privacy budget. The same schema and numbered migrations run
// on SQLite (modernc.org/sqlite, pure Go, the embedded default) and PostgreSQL (pgx).
//
// A submission's rows are committed before Insert returns, so that the survey service
// acknowledges only what is durable. Releases add noise with pkg/dp and charge the budget in the
// same transaction that records them.
package store
