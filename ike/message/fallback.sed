# stringer names an unlisted value TypeName(n); logs have always shown the
# registry's prefix instead (NOTIFY(12345)), so go generate rewrites it.
s/"ExchangeType("/"EXCHANGE("/
s/"PayloadType("/"PAYLOAD("/
s/"ProtocolID("/"PROTO("/
s/"CertEncoding("/"CERT("/
s/"NotifyType("/"NOTIFY("/
s/"TSType("/"TS("/
s/"CFGType("/"CFG("/
s/"ConfigAttributeType("/"CONFIG_ATTR("/
