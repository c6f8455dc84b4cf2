package gen

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSummaryOutput(t *testing.T) {
	rx := RxStats{SinkStats: SinkStats{Packets: 95, Tagged: 93, Untagged: 1, Other: 1, Duplicates: 2, Lost: 6, Flows: 3}, PPS: 95}
	tx := TxStats{Packets: 100, Bytes: 6400, Seconds: 1, PPS: 100}
	s := Summary{Tx: &tx, Rx: &rx}
	m := int64(tx.Packets) - int64(rx.Tagged+rx.Untagged-rx.Duplicates)
	s.Missing = &m
	var js strings.Builder
	if err := s.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]map[string]any
	if err := json.Unmarshal([]byte(strings.Replace(js.String(), `"missing": 8`, `"missing": {"n": 8}`, 1)), &back); err != nil {
		t.Fatalf("%v\n%s", err, js.String())
	}
	if back["tx"]["packets"] != 100.0 || back["rx"]["lost"] != 6.0 || back["rx"]["flows"] != 3.0 || back["missing"]["n"] != 8.0 {
		t.Fatalf("%s", js.String())
	}
	var txt strings.Builder
	if err := s.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tx: 100 packets", "lost 6", "duplicates 2", "sent - received: 8", "100 pps"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, txt.String())
		}
	}
}

func TestPPSString(t *testing.T) {
	for r, want := range map[PPS]string{0: "0 pps", 999: "999 pps", 1500: "1.5 kpps", 2.139e6: "2.139 Mpps"} {
		if got := r.String(); got != want {
			t.Errorf("PPS(%v) = %q, want %q", float64(r), got, want)
		}
	}
}
