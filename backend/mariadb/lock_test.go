package mariadb

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

func TestTryLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn, _ := testDSN(t)
	s1 := openStore(t, dsn, nil)
	s2 := openStore(t, dsn, nil) // another sidecar on the same database
	other := newStore(t)         // another database on the same server

	l1, ok, err := s1.TryLock(ctx, "nightly")
	if err != nil || !ok {
		t.Fatalf("first TryLock = %v, %v", ok, err)
	}
	if !l1.Held(ctx) {
		t.Error("Held = false for the holder")
	}
	if l, ok, err := s2.TryLock(ctx, "nightly"); err != nil || ok || l != nil {
		t.Errorf("second sidecar TryLock = %v, %v, %v; want refused", l, ok, err)
	}
	if l, ok, err := s1.TryLock(ctx, "nightly"); err != nil || ok {
		t.Errorf("same store, new connection: TryLock = %v, %v; want refused", ok, err)
	} else if l != nil {
		l.Release()
	}
	lo, ok, err := other.TryLock(ctx, "nightly")
	if err != nil || !ok {
		t.Errorf("other database: TryLock = %v, %v; want its own lock", ok, err)
	} else {
		lo.Release()
	}
	l3, ok, err := s2.TryLock(ctx, "reconcile")
	if err != nil || !ok {
		t.Errorf("another name: TryLock = %v, %v", ok, err)
	} else {
		l3.Release()
	}

	l1.Release()
	if l1.Held(ctx) {
		t.Error("Held = true after Release")
	}
	l1.Release() // idempotent

	l2, ok, err := s2.TryLock(ctx, "nightly")
	if err != nil || !ok {
		t.Fatalf("TryLock after Release = %v, %v", ok, err)
	}
	defer l2.Release()
	if !l2.Held(ctx) {
		t.Error("Held = false for the new holder")
	}

	// The holder's session dies: the lock goes with it, and Held says so.
	if _, err := s1.DB().ExecContext(ctx, "KILL CONNECTION ?", l2.connID); err != nil {
		t.Fatal(err)
	}
	if l2.Held(ctx) {
		t.Error("Held = true after the connection was killed")
	}
	// KILL returns before the killed session has ended and freed its locks.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var free sql.NullInt64
		if err := s1.DB().QueryRowContext(ctx, "SELECT IS_FREE_LOCK(?)", l2.name).Scan(&free); err != nil {
			t.Fatal(err)
		}
		if free.Int64 == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed session's lock was never freed")
		}
	}
	l4, ok, err := s1.TryLock(ctx, "nightly")
	if err != nil || !ok {
		t.Fatalf("TryLock after the holder died = %v, %v", ok, err)
	}
	l4.Release()
	l2.Release() // on a dead connection: no panic, no error

	if _, _, err := s1.TryLock(ctx, ""); err == nil {
		t.Error("TryLock accepted an empty name")
	}
	// The pool is not left holding anything: every name is free again.
	for _, name := range []string{"nightly", "reconcile"} {
		var free int
		if err := s1.DB().QueryRowContext(ctx, "SELECT IS_FREE_LOCK(?)", lockName(s1.Schema(), name)).Scan(&free); err != nil || free != 1 {
			t.Errorf("%s: IS_FREE_LOCK = %d, %v", name, free, err)
		}
	}
}

func TestLockName(t *testing.T) {
	t.Parallel()
	if got := lockName("srs", "nightly"); got != "srsproxy.srs.nightly" {
		t.Errorf("lockName = %q", got)
	}
	long := strings.Repeat("s", 64)
	a, b := lockName(long, "nightly"), lockName(long, "rebuild")
	if len(a) > 64 || len(b) > 64 || a == b {
		t.Errorf("long lock names %q, %q", a, b)
	}
}
