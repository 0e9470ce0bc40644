// Package election owns everything of an election that is not the ballot box
// (docs/spec/vote.md §12): the definition signed by the election official, the
// transport of the trustees' key generation over files (dealings with shares
// encrypted to each trustee with HPKE, complaints, answers; the qualified set and
// the election key recomputed by anyone), mixing (one Verificatum proof
// directory per mixer per question), decryption shares, the tally, the layout of
// the published record, and Verify, which checks a complete record and names
// exactly what failed.
//
// The cryptography is pkg/vote/trustee (key generation, decryption proofs),
// pkg/vote/verificatum (shuffles) and pkg/vote/ballot; the ballot box and the
// bulletin board are pkg/vote/board. This package adds formats, signatures and
// the order of checks.
//
// # Record layout (§12.4)
//
//	definition.json          the signed definition; ElectionHash = SHA-256 of this file
//	keygen/dealing-NN.bt     round 1, trustee NN (01..n)
//	keygen/complaints-NN.bt  round 2
//	keygen/answer-NN.bt      round 3 (only dealers complained about)
//	params.bin               board.Params for the ballot box (BoxParams)
//	board.bin                the bulletin board as downloaded from the ballot box
//	mix/mixer-KK.bt          mixer position KK (01..K)'s signature over the files it added
//	mix/qQQ/                 Verificatum "shuffling" directory of question QQ, every mixer's proof;
//	                         "mixing" once every trustee added its decryption in Verificatum's
//	                         format (mixctl vote vmn-decrypt), so that vmnv -mix checks the tally
//	decrypt/share-NN.bt      trustee NN's decryption shares of the last mixer's output
//	tally.json               the counts
//
// Every file is outside input to the verifier: each is read with a size limit
// and parsed strictly (a successful parse re-encodes to the same bytes).
package election
