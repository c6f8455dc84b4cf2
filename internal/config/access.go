package config

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkSecretFile refuses a key, PSK or private-key file that group or
// others may access, as OpenSSH refuses such a private key: whoever can
// read it can impersonate the gateway or read its traffic. It looks at
// the open file (fstat), not the path, so the file checked is the one read.
func checkSecretFile(f *os.File, p string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: permissions %04o are too open: a file holding a key must not be accessible by group or others; run chmod 600 %s", p, perm, p)
	}
	return nil
}

// noteInlineKey remembers a key written in the YAML itself, for the one
// warning Parse adds to Config.Warnings.
func (d *decoder) noteInlineKey(n *yaml.Node, field string) {
	d.inlineKeys = append(d.inlineKeys, fmt.Sprintf("%s (line %d)", field, n.Line))
}

// inlineKeyWarning is the one warning for all the keys written inline.
func (d *decoder) inlineKeyWarning() string {
	if len(d.inlineKeys) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: keys written inline in the configuration (%s): whoever can read the file, its backups or its history has them; put each in a key_file of mode 0600 instead",
		d.file, strings.Join(d.inlineKeys, ", "))
}

// group reads control_group or control_admin_group: a group name or a
// numeric gid. Group 0 is refused: root always has access, and the root
// group is not meant to widen it.
func (d *decoder) group(n *yaml.Node, field string) uint32 {
	s, ok := d.scalar(n, field)
	if !ok || s == "" {
		if ok {
			d.errf(n, field, "must not be empty")
		}
		return 0
	}
	var gid uint64
	if v, err := strconv.ParseUint(s, 10, 32); err == nil {
		gid = v
	} else {
		g, err := user.LookupGroup(s)
		if err != nil {
			d.errf(n, field, "no group %q on this system", s)
			return 0
		}
		if gid, err = strconv.ParseUint(g.Gid, 10, 32); err != nil {
			d.errf(n, field, "group %q has gid %q", s, g.Gid)
			return 0
		}
	}
	if gid == 0 {
		d.errf(n, field, "group 0 (root) is not needed: root always has access; name the group of the operators")
		return 0
	}
	return uint32(gid)
}
