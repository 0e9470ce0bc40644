// Package survey is the provider's survey service (docs/spec/survey.md section 5): it takes
// the fragments that arrive for service "survey", parses the submission each one carries,
// validates it against the signed survey the aggregator opened in the store, stores it durably
// (pkg/survey/store, SQLite or PostgreSQL) and only then acknowledges it through the SURB with
// the ACK of docs/spec/fragment.md section 3. Retransmissions are recognised by submission id
// and acknowledged again; refusals store nothing. A closed survey, or one not open yet, is
// refused with status 5 and the reason as the ACK's answer ("survey NAME is closed").
//
// Concurrent deliveries share database commits: Deliver validates a submission and queues it,
// and a single writer goroutine (Run) takes every submission waiting when a commit starts into
// the next transaction (group commit), then sends each one's ACK. So the insert rate is not
// bounded by one fsync per submission, nor by how many deliveries the provider runs at once.
//
// The mixd_survey_* metrics (metrics.go) count submissions stored, duplicates and refusals by
// reason, and time each group commit.
package survey
