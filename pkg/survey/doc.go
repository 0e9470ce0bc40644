// Package survey owns the formats of the survey use case (DESIGN.md section 9,
// docs/spec/survey.md): survey definitions and their canonical encoding (section 2), the
// collector's signature over them (section 3), submissions (section 4) and their validation
// against a definition (section 4.1), and the client's local perturbation of answers (section
// 6.1, with the samplers of pkg/dp).
//
// Parsers are strict: every accepted encoding re-encodes to the identical bytes, and every
// length is bounded before it is read.
package survey
