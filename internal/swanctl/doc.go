// Package swanctl reads strongSwan's swanctl.conf (the strongswan.conf(5)
// syntax: nested `name { key = value }` sections, `#` comments, quoted
// values, `include` with shell wildcards, `name : other { }` section
// references) and converts its connections, children and IKE secrets into
// an xdpsec YAML configuration (`xdpsec import swanctl`).
//
// The conversion never drops a setting silently: whatever xdpsec cannot
// express (IKEv1, EAP, virtual IPs, marks, updown scripts, ...) becomes a
// YAML comment naming the file, the line and the reason, and a connection
// that cannot work without it is written as a comment as a whole. Secret
// values are never written into the YAML or a comment: pre-shared keys go
// to separate files (psk_file) or the environment (psk_env).
package swanctl
