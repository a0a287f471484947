package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
)

// BenchmarkPipeline measures the server side of pipelined commands: a batch
// of 100 ECHOs per write, replies read back in full.
func BenchmarkPipeline(b *testing.B) {
	s := startServer(b, Config{})
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	batch := strings.Repeat(resp("ECHO", "payload-0123456789"), 100)
	want := len(strings.Repeat("$18\r\npayload-0123456789\r\n", 100))
	br := bufio.NewReaderSize(nc, 64<<10)
	buf := make([]byte, want)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := io.WriteString(nc, batch); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(100*b.N), "ns/cmd")
}

// BenchmarkReply measures encoding a RESP3 map reply.
func BenchmarkReply(b *testing.B) {
	w := &Reply{proto: 3}
	b.ReportAllocs()
	for range b.N {
		w.b = w.b[:0]
		w.begin()
		w.Map(3)
		w.String("due")
		w.Int(1767225600000)
		w.String("stability")
		w.Double(12.345)
		w.String("cached")
		w.Bool(true)
	}
}
