package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/srsproxy/srsproxy/writebehind"
)

const queueUsage = `usage: srsproxy queue check|repair --queue-dir DIR

  check   report what the durable queue holds (segments, entries, held and
          unsettled entries, the drained checkpoint) and any damage: file,
          offset, which entries cannot be read. Read only; may run beside a
          running sidecar. Exit status 0 if the queue opens, 1 if not.
  repair  cut the damage, keeping every readable entry, and say what was
          lost. The sidecar must be stopped. Exit status 0 if the queue
          opens afterwards.
`

// runQueue is `srsproxy queue check|repair`: the operator's view of a queue
// directory that Open refused (or that they want to inspect). It returns the
// exit status: 0 done (and the queue opens), 1 the queue does not open or
// the action failed, 2 bad usage.
func runQueue(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" && args[0] != "repair" {
		fmt.Fprint(stderr, queueUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("srsproxy queue "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("queue-dir", os.Getenv("SRSPROXY_QUEUE_DIR"), "durable local queue directory (env SRSPROXY_QUEUE_DIR)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, queueUsage)
		return 2
	}
	if fi, err := os.Stat(*dir); err != nil {
		fmt.Fprintf(stderr, "srsproxy queue %s: %v\n", sub, err)
		return 1
	} else if !fi.IsDir() {
		fmt.Fprintf(stderr, "srsproxy queue %s: %s is not a directory\n", sub, *dir)
		return 1
	}
	if sub == "check" {
		rep, err := writebehind.Check(*dir)
		if err != nil {
			fmt.Fprintf(stderr, "srsproxy queue check: %v\n", err)
			return 1
		}
		rep.Format(stdout)
		if !rep.Opens {
			return 1
		}
		return 0
	}

	cut, err := writebehind.Repair(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "srsproxy queue repair: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "before the repair:")
	cut.Format(stdout)
	switch {
	case len(cut.Damage) == 0:
		fmt.Fprintln(stdout, "repair: nothing to cut")
	default:
		fmt.Fprintf(stdout, "repair: cut %d damaged parts, kept every readable entry\n", len(cut.Damage))
		fmt.Fprintf(stdout, "repair: %d acknowledged entries (after the drained checkpoint) could not be read and are lost"+
			" (at most: each of those %d sequence numbers held a review or a confirm/cancel record)\n", cut.Lost, cut.Lost)
		for _, d := range cut.Damage {
			if d.Tail {
				fmt.Fprintf(stdout, "repair: the damaged end of %s from entry %d on was cut, as the sidecar's start would (usually a crash mid-write, before its fsync)\n", d.File, d.FirstSeq)
			}
		}
		for _, s := range cut.Saved {
			fmt.Fprintf(stdout, "repair: the cut bytes are kept in %s\n", s)
		}
	}
	after, err := writebehind.Check(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "srsproxy queue repair: check after the repair: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "after the repair:")
	after.Format(stdout)
	if !after.Opens {
		return 1
	}
	return 0
}
