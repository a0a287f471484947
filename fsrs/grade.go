package fsrs

import "github.com/srsproxy/srsproxy/srs"

// GradeFromAnswer maps a quiz answer to a grade as memora does: wrong or more
// than one attempt is Again; correct within 2 s is Easy, within 5 s Good,
// slower Hard. ms is the answer time in milliseconds.
func GradeFromAnswer(correct bool, ms int64, attempts int) srs.Grade {
	switch {
	case !correct || attempts > 1:
		return srs.Again
	case ms < 2000:
		return srs.Easy
	case ms < 5000:
		return srs.Good
	default:
		return srs.Hard
	}
}
