package proxy

// ReplyRecorder is a Reply that writes into memory instead of a connection,
// for tests and benchmarks of reply writers, as httptest.ResponseRecorder is
// for HTTP handlers. Pass &rec.Reply to the code under test.
type ReplyRecorder struct {
	Reply
}

// NewReplyRecorder returns a recorder speaking proto (2 or 3) as the default
// user with RoleAdmin. Barriers registered with BeforeFlush are kept and
// never run; Reset drops them.
func NewReplyRecorder(proto int) *ReplyRecorder {
	r := &ReplyRecorder{}
	r.Reply = Reply{proto: proto, user: "default", c: &conn{role: RoleAdmin}}
	return r
}

// Bytes returns what was written since the last Reset. It aliases the
// recorder's buffer.
func (r *ReplyRecorder) Bytes() []byte { return r.b }

// Reset empties the recorder, keeping its buffer, and starts a new reply.
func (r *ReplyRecorder) Reset() {
	r.b = r.b[:0]
	clear(r.c.barriers)
	r.c.barriers = r.c.barriers[:0]
	r.begin()
}
