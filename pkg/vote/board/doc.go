// Package board owns everything a ballot box needs and nothing about key generation, mixing or
// decryption (docs/spec/vote.md §11, "Ballot box and bulletin board"):
//
//   - Params: what the box knows of one election (identifier, hash of the signed definition,
//     the threshold ElGamal key, the questions, the voter credentials, the trustees' signing
//     keys and threshold, the voting period and the box's own board-signing key).
//   - Cast: what a voter sends through the mixnet, one ballot (pkg/vote/ballot) per question,
//     each bound to the election hash and the question index, signed with the voter's Ed25519
//     credential. Check decides eligibility, signature and every proof.
//   - Entry: one entry of the append-only bulletin board, hash-chained to the previous one and
//     signed by the box. A board file is a sequence of length-prefixed entries.
//   - Receipt: the box's signed statement that a cast is entry Seq of the board, sent back to
//     the voter through the SURB.
//   - Close: at least Threshold trustee signatures over CloseMessage; the last entry of a board.
//   - Checker and VerifyBoard: the rules of a valid board, entry by entry, with errors that
//     name the entry and what is wrong; InputLists: the ciphertexts the first mixer shuffles.
//
// All formats are byte trees (§2.1) with a version label as first child, parsed strictly with
// hard size limits: a successful parse re-encodes to the identical bytes.
package board
