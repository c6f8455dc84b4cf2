// Package swantest is the check the strongSwan interop tests share: once
// per test binary it runs scripts/check-strongswan.sh, which starts charon
// the way the tests do and asks it which plugins and algorithms it loaded,
// so a machine that lacks one fails every interop test at once with the
// package to install, instead of failing each in its own way.
package swantest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	once    sync.Once
	skipMsg string
	failMsg string
)

// Need skips t when strongSwan is not installed or the test is not root,
// and fails it when strongSwan is installed but charon, started as the
// tests start it, lacks a plugin or algorithm they need.
func Need(t testing.TB) {
	t.Helper()
	once.Do(check)
	if skipMsg != "" {
		t.Skip(skipMsg)
	}
	if failMsg != "" {
		t.Fatal(failMsg)
	}
}

func check() {
	script, err := findScript()
	if err != nil {
		failMsg = err.Error()
		return
	}
	var out bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	msg := strings.TrimSpace(out.String())
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		skipMsg = "strongSwan interop: " + msg
	default:
		failMsg = fmt.Sprintf("strongSwan cannot run the interop tests (%v):\n%s", err, msg)
	}
}

// findScript looks for scripts/check-strongswan.sh in the module the test
// runs in (go test runs a test in its package's directory).
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "scripts", "check-strongswan.sh"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("swantest: no go.mod above the test's directory to find scripts/check-strongswan.sh in")
		}
		dir = parent
	}
}
