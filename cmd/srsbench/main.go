// Command srsbench is the reproducible whole-system benchmark of srsproxy
// (issue 6). It starts its own sidecar from bin/srsproxy, a private Redis
// and twemproxy, seeds MariaDB with LOAD DATA LOCAL INFILE and Redis through
// the sidecar's loader, then measures SRS.DUE, SRS.REVIEW, 50-review
// sessions and the mixed student pattern in closed and open loop, next to
// raw Redis, twemproxy and the direct MariaDB query, and writes a markdown
// table and a JSON file. docs/BENCHMARKS.md says how to read them.
//
//	srsbench --profile quick|default|full [--out docs/benchmarks] [flags]
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	o, err := ParseOptions(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "srsbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "srsbench:", err)
		os.Exit(1)
	}
	fmt.Print(rep.Markdown())
	if o.Out != "" {
		if err := rep.write(o.Out); err != nil {
			fmt.Fprintln(os.Stderr, "srsbench:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "srsbench: wrote %s/%s.md and %s/%s.json\n", o.Out, o.Profile, o.Out, o.Profile)
	}
}
