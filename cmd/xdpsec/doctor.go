package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/xdpsec/xdpsec/internal/doctor"
)

func runDoctor(args []string) int {
	fs, file := configFlagSet("doctor")
	out := fs.String("o", "text", "output: text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out != "text" && *out != "json" {
		fmt.Fprintln(os.Stderr, "xdpsec doctor: -o is text or json")
		return 2
	}
	cfg := loadConfig(*file)
	if cfg == nil {
		return 1
	}
	cfg.WipeSAKeys() // the checks need no keys
	cs := doctor.Run(cfg)
	if *out == "json" {
		json.NewEncoder(os.Stdout).Encode(cs)
	} else {
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STATUS\tCHECK\tDETAIL\tFIX")
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Status, c.Name, c.Detail, c.Fix)
		}
		tw.Flush()
	}
	if doctor.Failed(cs) {
		return 1
	}
	return 0
}
