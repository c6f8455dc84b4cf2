package ike

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/xdpsec/xdpsec/ike/message"
)

// TestParseProposalKeywords reads testdata/proposal_keywords.txt:
// ParseProposal's answer (the proposal as numbers and written back, or the
// error) for 369 spellings each for IKE and ESP, recorded before the
// keywords moved to ike/iana's table shared with static SAs. The move
// changed no answer; a keyword change must show up here.
func TestParseProposalKeywords(t *testing.T) {
	f, err := os.Open("testdata/proposal_keywords.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 3 {
			t.Fatalf("line %d: %d fields", n+1, len(fields))
		}
		proto, err0 := strconv.Atoi(fields[0])
		in, err1 := strconv.Unquote(fields[1])
		want, err2 := strconv.Unquote(fields[2])
		if err0 != nil || err1 != nil || err2 != nil {
			t.Fatalf("line %d: %v %v %v", n+1, err0, err1, err2)
		}
		p, err := ParseProposal(message.ProtocolID(proto), in)
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			j, _ := json.Marshal(p)
			got = string(j) + " " + p.String()
		}
		if got != want {
			t.Errorf("ParseProposal(%d, %q) = %s, want %s", proto, in, got, want)
		}
	}
	if n < 700 {
		t.Fatalf("only %d cases", n)
	}
}
