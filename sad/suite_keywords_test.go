package sad

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestParseSuiteKeywords reads testdata/suite_keywords.txt: ParseSuite's
// answer (the suite, its String, or the error) for 209 spellings, recorded
// before the keywords moved to ike/iana's table shared with IKE proposals.
// The move changed no answer; a keyword change must show up here.
func TestParseSuiteKeywords(t *testing.T) {
	f, err := os.Open("testdata/suite_keywords.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		in, want, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("line %d: no tab", n+1)
		}
		in, err1 := strconv.Unquote(in)
		want, err2 := strconv.Unquote(want)
		if err1 != nil || err2 != nil {
			t.Fatalf("line %d: %v %v", n+1, err1, err2)
		}
		su, err := ParseSuite(in)
		got := fmt.Sprintf("%d/%d/%d/%d %s", su.Cipher, su.KeyBits, su.Integ, su.ICVLen, su)
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != want {
			t.Errorf("ParseSuite(%q) = %s, want %s", in, got, want)
		}
	}
	if n < 200 {
		t.Fatalf("only %d cases", n)
	}
}
