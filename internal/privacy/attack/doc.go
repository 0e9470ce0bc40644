// Package attack runs the privacy measurement's attacks (issue 14) on what a global passive
// observer records (internal/privacy/capture) and on the ground truth of the tracer
// (internal/privacy/trace), and reports each with its chance level and a confidence interval:
//
//   - TimingCorrelation: for each real delivery, rank the users by how well the frames on their
//     outgoing links in the preceding seconds fit the network's delay distribution; success is
//     the true sender ranked first, chance is one over the number of users.
//   - Classify: can a classifier tell from a client link's frames alone whether a 5 s window
//     holds a real send? Balanced windows, cross-validated logistic regression, placebo labels
//     for the chance band.
//   - Events and Corrupt: turn the tracer's records into internal/privacy/entropy events, for
//     the sender entropy of every delivered message, with no corrupt node or with one node's
//     mapping of inputs to outputs given to the adversary.
//   - Disclosure: the statistical disclosure attack (Danezis 2003) on one user over rounds.
package attack
