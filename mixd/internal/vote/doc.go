// Package vote is the provider's ballot box: the "vote" service (docs/spec/vote.md §11.8).
//
// A voter's cast (pkg/vote/board) arrives as one fragment addressed to service "vote",
// recipient the election id. Deliver parses it and checks it against the election's parameters
// (eligibility, voter signature, every ballot proof) in the delivering goroutine; a single
// writer goroutine (Run) then appends accepted casts to the election's board with group commit
// (one write and one fsync per batch, pkg/vote/board/box) and only then answers, through the
// fragment's SURB, with an ACK carrying the box's signed receipt. Refusals are ACKs with status
// "refused" (or "malformed", "too large", "unknown recipient") whose answer says why; nothing
// is appended for them. A retransmission of an accepted cast gets the same receipt again.
//
// Elections are installed and closed by the operator through files in the box directory
// (pkg/vote/board/box; `mixctl vote open` and `mixctl vote close`): the service finds the
// parameters of an unknown election id there, and the writer looks for close requests every
// second, appending the close entry once the voting period has ended.
package vote
