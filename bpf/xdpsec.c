//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
/*
 * xdpsec XDP steering program.
 *
 * Decides, per received frame and as early as possible, whether a packet is
 * the fast path's business (redirect to the AF_XDP socket of the receive
 * queue), must be dropped, or belongs to the kernel (IKE, ARP/ND, traffic to
 * the host itself, anything we do not understand).
 *
 *   xdp_wan     unprotected side: ESP (RFC 4303) and ESP-in-UDP (RFC 3948)
 *               with a live SPI go to the XSK; unknown SPIs are dropped here.
 *               Outer fragments of ESP and ESP-in-UDP go to the XSK too, where
 *               the worker reassembles them (fastpath/reasm).
 *   xdp_lan     protected side: the destination address is looked up in an
 *               LPM mirror of the SPD; PROTECT/DIVERT go to the XSK, DISCARD
 *               is dropped, BYPASS and misses go to the kernel.
 *   xdp_onearm  both on one interface: the SPD mirror first, then (for
 *               BYPASS and misses) the WAN classification.
 *
 * Inbound SPD (RFC 4301 section 5.2): on the WAN, everything but ESP and
 * ESP-in-UDP with a live SPI is first decided by the inbound side of the SPD
 * (the policies' selectors reversed), so cleartext that we only accept
 * through an SA is dropped before the kernel can route it into the protected
 * LAN. An LPM map on the destination (in_v4/in_v6) answers for most
 * destinations at once; where the answer depends on the source, protocol or
 * ports it says IN_SCAN and the ordered rule list (in_rules) decides, first
 * match wins. Packets whose ports (later fragments) or protocol (IPv6
 * extension headers) are unknown are dropped when a rule needs them. The
 * gateway's own addresses are IN_HOST: IKE, ESP and management traffic to
 * the gateway keep the classification below.
 *
 * Fail closed: every redirect uses XDP_DROP as the fallback action, so a
 * queue without a registered socket (daemon dead or restarting) drops instead
 * of handing protected traffic to the kernel in clear.
 *
 * Cluster fence (issue 11, L2 mode): a tunnel group's address stays on the
 * interface of a node whose daemon died (kill -9) until its kernel lifetime
 * runs out (seconds). The daemon keeps, per group address it holds, the
 * deadline of its lease in the fence map (CLOCK_MONOTONIC ns, rewritten on
 * each renewal); ARP requests and Neighbor Solicitations for an address
 * whose deadline has passed are dropped here, so the dead node's kernel
 * stops answering for it before another node may take the group.
 *
 * Every packet increments exactly one "verdict" counter; CNT_XSK_MISSING is
 * the only counter that is a subset of others (redirects that fell back to
 * XDP_DROP).
 */
#include "include/xdpsec_bpf.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define NATT_PORT_DEFAULT 4500 /* RFC 7296 section 2.23 */
#define IKE_PORT 500 /* RFC 7296 section 2 */
#define XSK_MAX_QUEUES 64
#define LIVE_SPIS_MAX (1 << 20)
#define SPD_MAX_ENTRIES (1 << 16)
#define NATT_FRAGS_MAX 4096
/* How long after its first fragment an ESP-in-UDP datagram's later
 * fragments are still taken for its own (ns): their key (source, IP id) is
 * reused once the sender's id counter wraps. */
#define NATT_FRAG_TTL_NS (5ULL * 1000 * 1000 * 1000)
/* Inbound rules the scan reads; a longer SPD is cut here, and a packet that
 * matches none of the first IN_RULES_MAX is dropped (in_unsure_drop). */
#define IN_RULES_MAX 64
/* Group addresses in the cluster fence. */
#define FENCE_MAX 256

/* SPD actions as mirrored by user space into spd_v4/spd_v6. */
enum spd_action {
	SPD_BYPASS = 0,
	SPD_PROTECT = 1,
	SPD_DISCARD = 2,
	/* The selector is narrower than a destination prefix (source, protocol,
	 * ports): user space must run the exact SPD check. */
	SPD_DIVERT = 3,
};

/* Index into the per-CPU counters map. Keep in sync with counterNames in
 * counters.go (a test compares both through BTF). */
enum counter {
	CNT_PASS_OTHER = 0,
	CNT_PASS_IKE,
	CNT_PASS_NATT_KEEPALIVE,
	CNT_PASS_NATT_SHORT,
	CNT_ESP_REDIRECT,
	CNT_ESP_UNKNOWN_SPI,
	CNT_ESPUDP_REDIRECT,
	CNT_LAN_PROTECT_REDIRECT,
	CNT_LAN_DIVERT_REDIRECT,
	CNT_LAN_DISCARD,
	CNT_LAN_BYPASS,
	CNT_LAN_LINK_LOCAL_PASS,
	CNT_FRAG_PASS,
	CNT_MALFORMED_PASS,
	CNT_IPV6_EXTHDR_PASS,
	CNT_XSK_MISSING,
	/* Inbound SPD verdicts (WAN cleartext not addressed to the gateway). */
	CNT_IN_PROTECT_DROP, /* inside a PROTECT policy: only accepted through an SA */
	CNT_IN_DISCARD,      /* a DISCARD policy */
	CNT_IN_BYPASS,       /* a BYPASS policy: to the kernel */
	CNT_IN_DEFAULT_DROP, /* no policy, default_action discard */
	CNT_IN_DEFAULT_PASS, /* no policy, default bypass (or one-arm) */
	CNT_IN_UNSURE_DROP,  /* a rule needs ports/protocol the packet does not show */
	CNT_VLAN_OTHER_PASS, /* not the configured VLAN (or untagged): the kernel's */
	CNT_FRAG_REDIRECT,   /* outer fragment of ESP / ESP-in-UDP, to the XSK for reassembly */
	CNT_FENCE_DROP,      /* ARP request / NS for a group address whose lease ran out */
	CNT_MAX,
};

/* config flags */
/* Redirect ESP with an unknown SPI to the XSK instead of dropping it, so user
 * space can audit it or answer with INVALID_SPI (RFC 7296 section 1.5). */
#define CFG_F_REDIRECT_UNKNOWN_SPI (1U << 0)

/* What the inbound mirror (in_v4/in_v6) says about a destination. */
enum in_action {
	IN_DEFAULT = 0, /* no policy covers it: default_action */
	IN_BYPASS = 1,
	IN_PROTECT = 2, /* cleartext is dropped: only accepted through an SA */
	IN_DISCARD = 3,
	IN_SCAN = 4,    /* depends on source, protocol or ports: scan in_rules */
	IN_HOST = 5,    /* the gateway's own address: the WAN classification */
	IN_UNSURE = 6,  /* scan result only: not decidable from this packet */
};

struct config {
	__u16 natt_port; /* host order; 0 means NATT_PORT_DEFAULT */
	/* The 802.1Q VLAN the interface's traffic carries (0: untagged).
	 * Frames of any other VLAN, or untagged ones when a VLAN is set, are
	 * the kernel's (its VLAN devices'): passed, not classified. */
	__u16 vid;
	__u32 flags;
	__u32 in_nrules;      /* rules of in_rules the scan reads */
	__u8 in_enabled;      /* 0: the inbound SPD is not applied */
	__u8 in_default_pass; /* IN_DEFAULT passes (counted) instead of dropping */
	__u8 in_truncated;    /* in_rules holds only the first in_nrules rules */
	/* Trunk (one-arm program only): the LAN and the WAN are two VLANs of
	 * this one port. Frames tagged lan_vid (0: untagged) are the protected
	 * side (the SPD mirror, as xdp_lan), frames tagged vid the outside (the
	 * WAN rules and the inbound SPD, as xdp_wan, never the SPD mirror). */
	__u8 trunk;
	__u16 lan_vid;
	/* Q-in-Q: the 802.1ad service tag (TPID 0x88a8) outside the 802.1Q
	 * tag vid (lan_vid), 0 for none: the frame's two tags must both match. */
	__u16 svid;
	__u16 lan_svid;
	__u16 pad3;
};

/* One inbound policy: addresses masked, words in network order (IPv4 in
 * word 0), ports in host order with 0-65535 for any. */
struct in_rule {
	__u32 src[4];
	__u32 smask[4];
	__u32 dst[4];
	__u32 dmask[4];
	__u16 sp_lo, sp_hi, dp_lo, dp_hi;
	__u8 family; /* 0: any, 4 or 6 */
	__u8 proto;  /* 0: any */
	__u8 action; /* IN_BYPASS, IN_PROTECT or IN_DISCARD */
	__u8 ports;  /* 1: the port ranges restrict */
};

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XSK_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* Key: the SPI exactly as the four bytes on the wire (no byte swap). Not
 * preallocated: 2^20 preallocated elements would pin ~100 MiB of kernel
 * memory for gateways that hold a handful of SAs; only user space inserts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LIVE_SPIS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} live_spis SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, enum spd_action);
} spd_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, enum spd_action);
} spd_v6 SEC(".maps");

/* A datagram whose first fragment was ESP-in-UDP: its later fragments carry
 * no UDP header, only this key says they belong to the XSK. The value is
 * when the first fragment came (bpf_ktime_get_ns). */
struct frag_key {
	__u8 saddr[16];
	__u32 id;	/* IPv4 identification or IPv6 fragment header id, as on the wire */
	__u32 family;
};

/* LRU: an entry is ignored after NATT_FRAG_TTL_NS and pushed out by newer
 * ones (not deleted with the last fragment: fragments may come in any
 * order). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NATT_FRAGS_MAX);
	__type(key, struct frag_key);
	__type(value, __u64);
} natt_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, enum in_action);
} in_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SPD_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6_key);
	__type(value, enum in_action);
} in_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IN_RULES_MAX);
	__type(key, __u32);
	__type(value, struct in_rule);
} in_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* A group address (IPv4 as ::ffff:a.b.c.d) -> until when (bpf_ktime_get_ns)
 * the kernel may answer ARP / Neighbor Solicitations for it. */
struct fence_key {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fence_key);
	__type(value, __u64);
	__uint(max_entries, FENCE_MAX);
} fence SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

/* Parsed view of the network header. Pointers are into the packet and have
 * been bounds-checked up to l4 (exclusive). */
struct hdrs {
	void *l4;	/* first byte after the IP header (IPv4: IHL honoured) */
	__u8 *daddr;	/* destination address (4 or 16 bytes) */
	__u8 *saddr;	/* source address (4 or 16 bytes) */
	__u32 id;	/* IPv4 identification, as on the wire */
	__u8 family;	/* 4 or 6 */
	__u8 proto;	/* IPv4 protocol or IPv6 fixed-header next header */
	__u8 fragment;	/* IPv4 MF set or fragment offset non-zero */
	__u8 later;	/* IPv4 fragment offset non-zero: no transport header */
	__u8 lan_side;	/* trunk: the frame carries the LAN's tag */
};

enum parse_result {
	PARSE_IP,
	PARSE_NOT_IP,
	PARSE_ARP, /* h->l4 is the ARP header */
	PARSE_MALFORMED,
	PARSE_OTHER_VLAN,
};

/* Not inlined: one small subprogram instead of a copy per call site, and it
 * puts enum counter into the object's BTF, where bpf2go and the Go tests read
 * it. */
static __attribute__((noinline)) void count(enum counter c)
{
	__u32 idx = c;
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	/* Per-CPU slot: no other writer, a plain increment is exact. */
	if (v)
		*v += 1;
}

static __always_inline struct config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline int parse(struct xdp_md *ctx, struct hdrs *h)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct config *cfg = get_config();
	__u16 vid = 0, svid = 0;
	void *l3;
	__be16 proto;

	if ((void *)(eth + 1) > end)
		return PARSE_MALFORMED;
	proto = eth->h_proto;
	l3 = eth + 1;

	/* One 802.1Q (or 802.1ad) tag, or Q-in-Q: an 802.1ad service tag with
	 * an 802.1Q tag inside. Any other stack (a third tag, 802.1Q in 802.1Q)
	 * is "not IP" to us and goes to the kernel. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;
		__be16 outer = proto;

		if ((void *)(vh + 1) > end)
			return PARSE_MALFORMED;
		vid = bpf_ntohs(vh->tci) & 0x0fff;
		proto = vh->encap_proto;
		l3 = vh + 1;
		if (outer == bpf_htons(ETH_P_8021AD) && proto == bpf_htons(ETH_P_8021Q)) {
			vh = l3;
			if ((void *)(vh + 1) > end)
				return PARSE_MALFORMED;
			svid = vid;
			vid = bpf_ntohs(vh->tci) & 0x0fff;
			proto = vh->encap_proto;
			l3 = vh + 1;
		}
	}
	/* Steered by tag: only the configured VLAN's frames are ours (on a
	 * trunk, the LAN's VLAN's too, marked). */
	if (cfg && cfg->trunk && vid == cfg->lan_vid && svid == cfg->lan_svid)
		h->lan_side = 1;
	else if (vid != (cfg ? cfg->vid : 0) || svid != (cfg ? cfg->svid : 0))
		return PARSE_OTHER_VLAN;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 hlen;

		if ((void *)(ip + 1) > end)
			return PARSE_MALFORMED;
		if ((ip->ver_ihl >> 4) != 4)
			return PARSE_MALFORMED;
		hlen = (ip->ver_ihl & 0x0f) * 4;
		if (hlen < sizeof(*ip))
			return PARSE_MALFORMED;
		if (l3 + hlen > end)
			return PARSE_MALFORMED;
		h->l4 = l3 + hlen;
		h->daddr = ip->daddr;
		h->saddr = ip->saddr;
		h->id = ip->id;
		h->family = 4;
		h->proto = ip->protocol;
		/* MF (0x2000) or a non-zero offset (0x1fff): any fragment. */
		h->fragment = (ip->frag_off & bpf_htons(0x3fff)) != 0;
		h->later = (ip->frag_off & bpf_htons(0x1fff)) != 0;
		return PARSE_IP;
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return PARSE_MALFORMED;
		if ((ip6->ver_tc_flow[0] >> 4) != 6)
			return PARSE_MALFORMED;
		h->l4 = ip6 + 1;
		h->daddr = ip6->daddr;
		h->saddr = ip6->saddr;
		h->family = 6;
		h->proto = ip6->nexthdr;
		h->fragment = 0; /* a Fragment header shows up as nexthdr 44 */
		return PARSE_IP;
	}

	if (proto == bpf_htons(ETH_P_ARP)) {
		h->l4 = l3;
		return PARSE_ARP;
	}
	return PARSE_NOT_IP;
}

static __always_inline int to_xsk(struct xdp_md *ctx)
{
	/* The low bits of flags are the action taken when the queue has no
	 * socket: XDP_DROP keeps us fail-closed. */
	long ret = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_DROP);

	if (ret != XDP_REDIRECT)
		count(CNT_XSK_MISSING);
	return (int)ret;
}

/* spi is the SPI as it sits in the packet (network order, not swapped). */
static __always_inline int esp_verdict(struct xdp_md *ctx, __u32 spi, enum counter hit)
{
	struct config *cfg;

	if (bpf_map_lookup_elem(&live_spis, &spi)) {
		count(hit);
		return to_xsk(ctx);
	}
	count(CNT_ESP_UNKNOWN_SPI);
	cfg = get_config();
	if (cfg && (cfg->flags & CFG_F_REDIRECT_UNKNOWN_SPI))
		return to_xsk(ctx);
	return XDP_DROP;
}

static __always_inline int is_v6_exthdr(__u8 nh)
{
	switch (nh) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_MH:
	case IPPROTO_HIP:
	case IPPROTO_SHIM6:
	case 253: /* RFC 3692 experimentation */
	case 254:
		return 1;
	}
	return 0;
}

static __always_inline int wan_udp(struct xdp_md *ctx, struct hdrs *h)
{
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp = h->l4;
	struct config *cfg;
	__u16 natt_port = NATT_PORT_DEFAULT;
	__u16 dport, ulen;
	__u8 *payload;
	__u32 marker;

	if ((void *)(udp + 1) > end) {
		count(CNT_MALFORMED_PASS);
		return XDP_PASS;
	}
	dport = bpf_ntohs(udp->dest);

	cfg = get_config();
	if (cfg && cfg->natt_port)
		natt_port = cfg->natt_port;

	if (dport == natt_port) {
		/* Use the UDP length, not data_end: short frames carry Ethernet
		 * padding after a 1-byte keepalive. */
		ulen = bpf_ntohs(udp->len);
		if (ulen < sizeof(*udp)) {
			count(CNT_MALFORMED_PASS);
			return XDP_PASS;
		}
		payload = (__u8 *)(udp + 1);
		if (ulen - sizeof(*udp) < 4) {
			if (ulen - sizeof(*udp) == 1 && (void *)(payload + 1) <= end &&
			    payload[0] == 0xff) {
				count(CNT_PASS_NATT_KEEPALIVE); /* RFC 3948 section 2.3 */
				return XDP_PASS;
			}
			count(CNT_PASS_NATT_SHORT);
			return XDP_PASS;
		}
		if ((void *)(payload + 4) > end) {
			count(CNT_MALFORMED_PASS);
			return XDP_PASS;
		}
		__builtin_memcpy(&marker, payload, sizeof(marker));
		if (marker == 0) {
			/* Non-ESP marker: IKE on the NAT-T port (RFC 3948 section 2.2). */
			count(CNT_PASS_IKE);
			return XDP_PASS;
		}
		return esp_verdict(ctx, marker, CNT_ESPUDP_REDIRECT);
	}
	if (dport == IKE_PORT) {
		count(CNT_PASS_IKE);
		return XDP_PASS;
	}
	count(CNT_PASS_OTHER);
	return XDP_PASS;
}

/* Destinations that are never forwarded by a router, so no IPsec policy can
 * apply to them: IPv4 169.254/16, 224.0.0.0/24, 255.255.255.255; IPv6
 * fe80::/10 and interface/link-local scoped multicast (ff01::/16, ff02::/16
 * and their flagged variants). */
static __always_inline int is_link_local(struct hdrs *h)
{
	__u8 *d = h->daddr;

	if (h->family == 4) {
		if (d[0] == 169 && d[1] == 254)
			return 1;
		if (d[0] == 224 && d[1] == 0 && d[2] == 0)
			return 1;
		return d[0] == 255 && d[1] == 255 && d[2] == 255 && d[3] == 255;
	}
	if (d[0] == 0xfe && (d[1] & 0xc0) == 0x80)
		return 1;
	return d[0] == 0xff && ((d[1] & 0x0f) == 1 || (d[1] & 0x0f) == 2);
}

/* The selector fields of a WAN packet for the inbound rules. */
struct in_pkt {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport, dport; /* host order; 0 for protocols without ports */
	__u8 family;
	__u8 proto;
	__u8 proto_known; /* 0: IPv6 extension headers hide the protocol */
	__u8 ports_known; /* 0: a later fragment, or the header is cut short */
};

struct frag6hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-octet units << 3, and M */
	__be32 id;
};

static __always_inline int has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
	       proto == IPPROTO_UDPLITE;
}

static __always_inline void in_fill(struct xdp_md *ctx, struct hdrs *h, struct in_pkt *p)
{
	void *end = (void *)(long)ctx->data_end;
	void *l4 = h->l4;
	__u8 proto = h->proto;
	int later = h->later;

	p->family = h->family;
	if (h->family == 4) {
		__builtin_memcpy(p->src, h->saddr, 4);
		__builtin_memcpy(p->dst, h->daddr, 4);
	} else {
		__builtin_memcpy(p->src, h->saddr, 16);
		__builtin_memcpy(p->dst, h->daddr, 16);
		if (proto == IPPROTO_FRAGMENT) {
			struct frag6hdr *f = l4;

			if ((void *)(f + 1) > end)
				return; /* protocol and ports unknown */
			proto = f->nexthdr;
			later = (f->frag_off & bpf_htons(0xfff8)) != 0;
			l4 = f + 1;
		}
		if (proto == IPPROTO_FRAGMENT || is_v6_exthdr(proto))
			return; /* not walked: protocol and ports unknown */
	}
	p->proto = proto;
	p->proto_known = 1;
	if (!has_ports(proto)) {
		p->ports_known = 1; /* ports are 0, as the SPD sees them */
		return;
	}
	if (later || l4 + 4 > end)
		return;
	p->sport = bpf_ntohs(*(__be16 *)l4);
	p->dport = bpf_ntohs(*(__be16 *)(l4 + 2));
	p->ports_known = 1;
}

static __always_inline int in_addr_match(const __u32 *a, const __u32 *m, const __u32 *want)
{
	return ((a[0] & m[0]) == want[0]) & ((a[1] & m[1]) == want[1]) &
	       ((a[2] & m[2]) == want[2]) & ((a[3] & m[3]) == want[3]);
}

/* First match of the ordered inbound rules. Not inlined: one copy of the
 * loop for the WAN and one-arm programs. */
static __attribute__((noinline)) int in_scan(struct in_pkt *p)
{
	struct config *cfg = get_config();
	__u32 n = cfg ? cfg->in_nrules : 0;
	__u32 i;

	for (i = 0; i < IN_RULES_MAX; i++) {
		struct in_rule *r;
		__u32 k = i;

		if (i >= n)
			break;
		r = bpf_map_lookup_elem(&in_rules, &k);
		if (!r)
			break;
		if (r->family && r->family != p->family)
			continue;
		if (!in_addr_match(p->src, r->smask, r->src) || !in_addr_match(p->dst, r->dmask, r->dst))
			continue;
		if (r->proto) {
			if (!p->proto_known)
				return IN_UNSURE;
			if (r->proto != p->proto)
				continue;
		}
		if (r->ports) {
			if (!p->ports_known)
				return IN_UNSURE;
			if (p->sport < r->sp_lo || p->sport > r->sp_hi || p->dport < r->dp_lo ||
			    p->dport > r->dp_hi)
				continue;
		}
		return r->action;
	}
	if (!cfg || cfg->in_truncated)
		return IN_UNSURE;
	return IN_DEFAULT;
}

#define IN_FALLTHROUGH (-1)

/* The inbound SPD for a WAN packet that is not ESP with an SPI. Returns an
 * XDP action (counted), or IN_FALLTHROUGH (nothing counted) when the
 * inbound SPD is off or the packet is for the gateway itself or link-scoped. */
static __always_inline int in_stage(struct xdp_md *ctx, struct hdrs *h)
{
	struct config *cfg = get_config();
	struct in_pkt p = {};
	__u32 action = IN_DEFAULT;
	__u32 *v;

	if (!cfg || !cfg->in_enabled)
		return IN_FALLTHROUGH;
	if (is_link_local(h))
		return IN_FALLTHROUGH;
	if (h->family == 4) {
		struct lpm_v4_key k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, h->daddr, sizeof(k.addr));
		v = bpf_map_lookup_elem(&in_v4, &k);
	} else {
		struct lpm_v6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, h->daddr, sizeof(k.addr));
		v = bpf_map_lookup_elem(&in_v6, &k);
	}
	if (v)
		action = *v;
	if (action == IN_HOST)
		return IN_FALLTHROUGH;
	if (action == IN_SCAN) {
		in_fill(ctx, h, &p);
		action = in_scan(&p);
	}
	switch (action) {
	case IN_BYPASS:
		count(CNT_IN_BYPASS);
		return XDP_PASS;
	case IN_PROTECT:
		count(CNT_IN_PROTECT_DROP);
		return XDP_DROP;
	case IN_DISCARD:
		count(CNT_IN_DISCARD);
		return XDP_DROP;
	case IN_DEFAULT:
		if (cfg->in_default_pass) {
			count(CNT_IN_DEFAULT_PASS);
			return XDP_PASS;
		}
		count(CNT_IN_DEFAULT_DROP);
		return XDP_DROP;
	}
	count(CNT_IN_UNSURE_DROP); /* IN_UNSURE, and values we do not know */
	return XDP_DROP;
}

/* ESP and ESP-in-UDP with an SPI go to esp_verdict before the inbound SPD:
 * their SPI decides, and the ESP path pays no LPM lookup. Returns 1 and
 * the SPI (wire order) for such packets. */
static __always_inline int esp_spi(struct xdp_md *ctx, struct hdrs *h, __u32 *spi, enum counter *hit)
{
	void *end = (void *)(long)ctx->data_end;
	struct udphdr *udp = h->l4;
	struct config *cfg;
	__u16 natt_port = NATT_PORT_DEFAULT;

	if (h->fragment)
		return 0;
	if (h->proto == IPPROTO_ESP) {
		if (h->l4 + 8 > end)
			return 0;
		__builtin_memcpy(spi, h->l4, sizeof(*spi));
		*hit = CNT_ESP_REDIRECT;
		return 1;
	}
	if (h->proto != IPPROTO_UDP || (void *)(udp + 1) + 4 > end)
		return 0;
	cfg = get_config();
	if (cfg && cfg->natt_port)
		natt_port = cfg->natt_port;
	if (bpf_ntohs(udp->dest) != natt_port || bpf_ntohs(udp->len) < sizeof(*udp) + 4)
		return 0;
	__builtin_memcpy(spi, udp + 1, sizeof(*spi));
	if (*spi == 0)
		return 0; /* non-ESP marker: IKE */
	*hit = CNT_ESPUDP_REDIRECT;
	return 1;
}

/* An outer fragment (IPv4, or IPv6 with the Fragment header first). ESP
 * fragments go to the XSK: the protocol is in every IPv4 fragment and in
 * every IPv6 Fragment header's next header; the worker reassembles them in
 * bounded memory and drops what is not for a live SA. UDP fragments go to
 * the XSK when the first one is ESP-in-UDP (NAT-T port, non-zero marker);
 * its key is remembered so the later ones, which carry no ports, follow it,
 * for NATT_FRAG_TTL_NS: the sender reuses an IP id once its counter wraps,
 * and a stale key would take the later fragments of an unrelated datagram
 * (IKE fragmented by IP) from the kernel. A later UDP fragment that
 * overtakes its first goes to the kernel (and the set expires on both
 * sides, counted); everything else, IKE fragmented by IP included, is the
 * kernel's to reassemble as before.
 *
 * Fragments are redirected to the queue they arrived on, like any packet:
 * NICs hash fragments on addresses only, so one datagram's fragments share
 * a queue and a worker (see fastpath/worker.go). */
static __always_inline int wan_frag(struct xdp_md *ctx, struct hdrs *h)
{
	void *end = (void *)(long)ctx->data_end;
	struct frag_key k = {};
	struct config *cfg;
	struct udphdr *udp;
	__u16 natt_port = NATT_PORT_DEFAULT;
	__u8 proto = h->proto;
	__u64 now, *seen;
	__u32 marker;
	void *l4 = h->l4;
	int first = !h->later;

	k.family = h->family;
	if (h->family == 4) {
		k.id = h->id;
		__builtin_memcpy(k.saddr, h->saddr, 4);
	} else {
		__u8 *fh = h->l4;

		if ((void *)(fh + 8) > end) {
			count(CNT_MALFORMED_PASS);
			return XDP_PASS;
		}
		proto = fh[0];
		first = ((fh[2] << 8 | fh[3]) & 0xfff8) == 0;
		__builtin_memcpy(&k.id, fh + 4, sizeof(k.id));
		__builtin_memcpy(k.saddr, h->saddr, 16);
		l4 = fh + 8;
	}
	if (proto == IPPROTO_ESP) {
		count(CNT_FRAG_REDIRECT);
		return to_xsk(ctx);
	}
	if (proto != IPPROTO_UDP) {
		count(CNT_FRAG_PASS);
		return XDP_PASS;
	}
	if (!first) {
		seen = bpf_map_lookup_elem(&natt_frags, &k);
		if (seen && bpf_ktime_get_ns() - *seen < NATT_FRAG_TTL_NS) {
			count(CNT_FRAG_REDIRECT);
			return to_xsk(ctx);
		}
		count(CNT_FRAG_PASS);
		return XDP_PASS;
	}
	udp = l4;
	if ((void *)(udp + 1) + 4 > end) {
		count(CNT_FRAG_PASS);
		return XDP_PASS;
	}
	cfg = get_config();
	if (cfg && cfg->natt_port)
		natt_port = cfg->natt_port;
	__builtin_memcpy(&marker, udp + 1, sizeof(marker));
	if (bpf_ntohs(udp->dest) != natt_port || marker == 0) {
		count(CNT_FRAG_PASS);
		return XDP_PASS;
	}
	now = bpf_ktime_get_ns();
	bpf_map_update_elem(&natt_frags, &k, &now, BPF_ANY);
	count(CNT_FRAG_REDIRECT);
	return to_xsk(ctx);
}

/* WAN classification of a parsed IP packet. */
static __always_inline int wan_ip(struct xdp_md *ctx, struct hdrs *h)
{
	void *end = (void *)(long)ctx->data_end;
	enum counter hit = CNT_ESP_REDIRECT;
	__u32 spi;
	int r;

	if (esp_spi(ctx, h, &spi, &hit))
		return esp_verdict(ctx, spi, hit);
	r = in_stage(ctx, h);
	if (r != IN_FALLTHROUGH)
		return r;

	if (h->fragment)
		return wan_frag(ctx, h);
	if (h->proto == IPPROTO_ESP) {
		/* SPI and sequence number must be present (RFC 4303 section 2). */
		if (h->l4 + 8 > end) {
			count(CNT_MALFORMED_PASS);
			return XDP_PASS;
		}
		__builtin_memcpy(&spi, h->l4, sizeof(spi));
		return esp_verdict(ctx, spi, CNT_ESP_REDIRECT);
	}
	if (h->proto == IPPROTO_UDP)
		return wan_udp(ctx, h);
	if (h->family == 6) {
		if (h->proto == IPPROTO_FRAGMENT)
			return wan_frag(ctx, h);
		if (is_v6_exthdr(h->proto)) {
			/* Walking extension headers costs verifier complexity for
			 * traffic a gateway should not see on its ESP path. */
			count(CNT_IPV6_EXTHDR_PASS);
			return XDP_PASS;
		}
	}
	count(CNT_PASS_OTHER);
	return XDP_PASS;
}

/* Looks the destination up in the SPD mirror. Returns 1 and sets *action on
 * a match. */
static __always_inline int spd_lookup(struct hdrs *h, __u32 *action)
{
	__u32 *v;

	if (h->family == 4) {
		struct lpm_v4_key k = { .prefixlen = 32 };

		__builtin_memcpy(k.addr, h->daddr, sizeof(k.addr));
		v = bpf_map_lookup_elem(&spd_v4, &k);
	} else {
		struct lpm_v6_key k = { .prefixlen = 128 };

		__builtin_memcpy(k.addr, h->daddr, sizeof(k.addr));
		v = bpf_map_lookup_elem(&spd_v6, &k);
	}
	if (!v)
		return 0;
	*action = *v;
	return 1;
}

#define LAN_FALLTHROUGH (-1)

/* LAN stage. Returns an XDP action for PROTECT/DIVERT/DISCARD, or
 * LAN_FALLTHROUGH (nothing counted) for BYPASS, no match and link-local
 * destinations, which the caller handles. */
static __always_inline int lan_stage(struct xdp_md *ctx, struct hdrs *h, int *link_local)
{
	__u32 action = SPD_BYPASS;

	*link_local = is_link_local(h);
	if (*link_local)
		return LAN_FALLTHROUGH;
	if (!spd_lookup(h, &action))
		return LAN_FALLTHROUGH;
	switch (action) {
	case SPD_BYPASS:
		return LAN_FALLTHROUGH;
	case SPD_PROTECT:
		count(CNT_LAN_PROTECT_REDIRECT);
		return to_xsk(ctx);
	case SPD_DISCARD:
		count(CNT_LAN_DISCARD);
		return XDP_DROP;
	default:
		/* SPD_DIVERT, and any value this program does not know: let user
		 * space decide, still fail-closed. */
		count(CNT_LAN_DIVERT_REDIRECT);
		return to_xsk(ctx);
	}
}

/* Ethernet/IPv4 ARP (RFC 826). */
struct arp_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

/* Whether addr (4 or 16 bytes, already bounds-checked) is a group address
 * whose lease has run out. */
static __always_inline int fenced(const __u8 *addr, int v4)
{
	struct fence_key k = {};
	__u64 *until;

	if (v4) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], addr, 4);
	} else {
		__builtin_memcpy(k.addr, addr, 16);
	}
	until = bpf_map_lookup_elem(&fence, &k);
	return until && bpf_ktime_get_ns() >= *until;
}

/* An ARP request for a fenced address is dropped; any other ARP frame is
 * the kernel's. */
static __always_inline int arp_verdict(struct xdp_md *ctx, struct hdrs *h)
{
	void *end = (void *)(long)ctx->data_end;
	struct arp_ipv4 *a = h->l4;

	if ((void *)(a + 1) <= end && a->op == bpf_htons(1) && a->ptype == bpf_htons(ETH_P_IP) &&
	    a->plen == 4 && fenced(a->tpa, 1)) {
		count(CNT_FENCE_DROP);
		return XDP_DROP;
	}
	count(CNT_PASS_OTHER);
	return XDP_PASS;
}

/* A Neighbor Solicitation (RFC 4861 section 4.3: type 135, the target at
 * offset 8) for a fenced address. The solicitation has no extension
 * headers: nexthdr is ICMPv6. */
static __always_inline int ns_fenced(struct xdp_md *ctx, struct hdrs *h)
{
	void *end = (void *)(long)ctx->data_end;
	__u8 *icmp = h->l4;

	if (h->family != 6 || h->proto != 58 /* IPPROTO_ICMPV6 */)
		return 0;
	if ((void *)(icmp + 24) > end || icmp[0] != 135)
		return 0;
	if (!fenced(icmp + 8, 0))
		return 0;
	count(CNT_FENCE_DROP);
	return 1;
}

static __always_inline int not_ip_verdict(struct xdp_md *ctx, struct hdrs *h, int r)
{
	if (r == PARSE_ARP)
		return arp_verdict(ctx, h);
	if (r == PARSE_OTHER_VLAN)
		count(CNT_VLAN_OTHER_PASS);
	else
		count(r == PARSE_MALFORMED ? CNT_MALFORMED_PASS : CNT_PASS_OTHER);
	return XDP_PASS;
}

SEC("xdp")
int xdp_wan(struct xdp_md *ctx)
{
	struct hdrs h = {};
	int r = parse(ctx, &h);

	if (r != PARSE_IP)
		return not_ip_verdict(ctx, &h, r);
	if (ns_fenced(ctx, &h))
		return XDP_DROP;
	return wan_ip(ctx, &h);
}

/* LAN classification of a parsed IP packet. */
static __always_inline int lan_ip(struct xdp_md *ctx, struct hdrs *h)
{
	int link_local = 0;
	int r;

	/* Fragments are classified like any packet: the destination is in every
	 * fragment, and passing a PROTECT fragment would leak it in clear. */
	r = lan_stage(ctx, h, &link_local);
	if (r != LAN_FALLTHROUGH)
		return r;
	count(link_local ? CNT_LAN_LINK_LOCAL_PASS : CNT_LAN_BYPASS);
	return XDP_PASS;
}

SEC("xdp")
int xdp_lan(struct xdp_md *ctx)
{
	struct hdrs h = {};
	int r = parse(ctx, &h);

	if (r != PARSE_IP)
		return not_ip_verdict(ctx, &h, r);
	if (ns_fenced(ctx, &h))
		return XDP_DROP;
	return lan_ip(ctx, &h);
}

SEC("xdp")
int xdp_onearm(struct xdp_md *ctx)
{
	struct hdrs h = {};
	int r = parse(ctx, &h);
	int link_local = 0;
	struct config *cfg;

	if (r != PARSE_IP)
		return not_ip_verdict(ctx, &h, r);
	if (ns_fenced(ctx, &h))
		return XDP_DROP;
	/* A trunk gives each tag its role: the LAN's frames meet only the SPD
	 * mirror, the WAN's only the WAN rules, so cleartext on the WAN's tag
	 * meets the inbound SPD and is never sealed as if from the LAN. */
	if (h.lan_side)
		return lan_ip(ctx, &h);
	cfg = get_config();
	if (cfg && cfg->trunk)
		return wan_ip(ctx, &h);
	/* The SPD first, so traffic from the protected side is never mistaken
	 * for ESP or IKE addressed to us; user space keeps its own addresses
	 * BYPASS so ESP/IKE to the gateway falls through to the WAN rules. */
	r = lan_stage(ctx, &h, &link_local);
	if (r != LAN_FALLTHROUGH)
		return r;
	return wan_ip(ctx, &h);
}
