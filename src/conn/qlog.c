/* qlog (draft-ietf-quic-qlog-main-schema and -quic-events, JSON-SEQ per RFC
 * 7464): records are formatted into a stack buffer and handed to the
 * caller's on_qlog callback, which writes them where it likes. Nothing is
 * formatted when no callback is set. */
#include <stdarg.h>
#include <stdio.h>

#include "conn/conn_int.h"

#define QLOG_MAX 2048

static int qlog_on(const struct tern_conn *c)
{
	return c->cb && c->cb->on_qlog;
}

static int qlog_header(struct tern_conn *c);

static void emit(struct tern_conn *c, const char *name, uint64_t now, const char *fmt, ...)
{
	if (!c->qlog_started && qlog_header(c) != 0)
		return; /* nobody listens yet */
	char buf[QLOG_MAX];
	uint64_t rel = now > c->created ? now - c->created : 0;
	int n = snprintf(buf, sizeof(buf), "\x1e{\"time\":%llu.%03llu,\"name\":\"%s\",\"data\":",
			 (unsigned long long)(rel / 1000000), (unsigned long long)(rel / 1000 % 1000), name);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf) - 3)
		return; /* a record never gets truncated into invalid JSON */
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "}\n");
	(void)c->cb->on_qlog(c, c->user, buf, (size_t)n);
}

static void hex(char *out, const struct tern_cid *cid)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < cid->len; i++) {
		out[2 * i] = d[cid->bytes[i] >> 4];
		out[2 * i + 1] = d[cid->bytes[i] & 15];
	}
	out[2 * cid->len] = 0;
}

/* The trace header, then connection_started; 0 once somebody took it. */
static int qlog_header(struct tern_conn *c)
{
	char odcid[2 * TERN_MAX_CID_LEN + 1], buf[512];
	hex(odcid, &c->odcid);
	int n = snprintf(buf, sizeof(buf),
			 "\x1e{\"qlog_version\":\"0.3\",\"qlog_format\":\"JSON-SEQ\",\"title\":\"tern\","
			 "\"trace\":{\"vantage_point\":{\"type\":\"%s\"},\"common_fields\":{\"ODCID\":\"%s\","
			 "\"time_format\":\"relative\",\"reference_time\":0}}}\n",
			 c->is_server ? "server" : "client", odcid);
	if (c->cb->on_qlog(c, c->user, buf, (size_t)n) != 0)
		return -1;
	c->qlog_started = 1;
	emit(c, "transport:connection_started", c->created, "{\"quic_version\":\"0x%x\"}", c->version);
	return 0;
}

void qlog_start(struct tern_conn *c)
{
	if (qlog_on(c) && !c->qlog_started)
		qlog_header(c);
}

static const char *pkt_type_name(int ep)
{
	return ep == EP_INITIAL ? "initial" : ep == EP_HANDSHAKE ? "handshake" : "1RTT";
}

static const char *frame_name(uint64_t t)
{
	static const char *names[] = {
		"padding", "ping", "ack", "ack", "reset_stream", "stop_sending", "crypto", "new_token",
		"stream", "stream", "stream", "stream", "stream", "stream", "stream", "stream",
		"max_data", "max_stream_data", "max_streams", "max_streams", "data_blocked",
		"stream_data_blocked", "streams_blocked", "streams_blocked", "new_connection_id",
		"retire_connection_id", "path_challenge", "path_response", "connection_close",
		"connection_close", "handshake_done"};
	if (t < sizeof(names) / sizeof(names[0]))
		return names[t];
	return t == 0x30 || t == 0x31 ? "datagram" : "unknown";
}

void qlog_packet(struct tern_conn *c, int sent, int ep, uint64_t pn, size_t len,
		 const uint8_t *ftypes, size_t nf, uint64_t now)
{
	if (!qlog_on(c))
		return;
	char frames[1024];
	size_t off = 0;
	for (size_t i = 0; i < nf && off + 48 < sizeof(frames); i++)
		off += (size_t)snprintf(frames + off, sizeof(frames) - off, "%s{\"frame_type\":\"%s\"}",
					i ? "," : "", frame_name(ftypes[i]));
	frames[off] = 0;
	emit(c, sent ? "transport:packet_sent" : "transport:packet_received", now,
	     "{\"header\":{\"packet_type\":\"%s\",\"packet_number\":%llu},\"raw\":{\"length\":%zu},"
	     "\"frames\":[%s]}",
	     pkt_type_name(ep), (unsigned long long)pn, len, frames);
}

void qlog_payload(struct tern_conn *c, int sent, int ep, uint64_t pn, size_t len,
		  const uint8_t *payload, size_t payload_len, uint64_t now)
{
	if (!qlog_on(c))
		return;
	uint8_t types[32];
	size_t n = 0;
	const uint8_t *p = payload, *end = payload + payload_len;
	struct tern_frame f;
	while (p < end && n < sizeof(types) && tern_frame_decode(&p, end, &f) == 0)
		types[n++] = (uint8_t)(f.type < 0x100 ? f.type : 0xff);
	qlog_packet(c, sent, ep, pn, len, types, n, now);
}

void qlog_lost(struct tern_conn *c, int ep, uint64_t pn, uint64_t now)
{
	if (qlog_on(c))
		emit(c, "recovery:packet_lost", now,
		     "{\"header\":{\"packet_type\":\"%s\",\"packet_number\":%llu}}", pkt_type_name(ep),
		     (unsigned long long)pn);
}

void qlog_metrics(struct tern_conn *c, uint64_t now)
{
	if (qlog_on(c))
		emit(c, "recovery:metrics_updated", now,
		     "{\"min_rtt\":%.3f,\"smoothed_rtt\":%.3f,\"latest_rtt\":%.3f,\"rtt_variance\":%.3f,"
		     "\"congestion_window\":%llu,\"bytes_in_flight\":%llu}",
		     c->rtt.min_rtt / 1e6, c->rtt.smoothed_rtt / 1e6, c->rtt.latest_rtt / 1e6,
		     c->rtt.rttvar / 1e6, (unsigned long long)tern_cc_cwnd(&c->cc),
		     (unsigned long long)c->cc.bytes_in_flight);
}

void qlog_key_update(struct tern_conn *c, int local, uint64_t now)
{
	if (qlog_on(c))
		emit(c, "security:key_updated", now, "{\"key_type\":\"%s_1rtt_secret\",\"trigger\":\"%s\"}",
		     c->is_server == local ? "server" : "client", local ? "local_update" : "remote_update");
}

void qlog_closed(struct tern_conn *c, uint64_t now)
{
	if (!qlog_on(c))
		return;
	static const char *triggers[] = {"unspecified", "idle_timeout", "application", "error",
					 "stateless_reset", "handshake_timeout", "error"};
	const struct tern_close_info *ci = &c->close;
	int owner_local = ci->reason == TERN_CLOSE_LOCAL || ci->reason == TERN_CLOSE_ERROR ||
			  ci->reason == TERN_CLOSE_IDLE_TIMEOUT || ci->reason == TERN_CLOSE_HANDSHAKE_TIMEOUT;
	char reason[sizeof(ci->reason_phrase)];
	size_t k = 0;
	for (size_t i = 0; ci->reason_phrase[i] && k + 1 < sizeof(reason); i++) {
		char ch = ci->reason_phrase[i];
		reason[k++] = (ch == '"' || ch == '\\' || (unsigned char)ch < 0x20) ? '?' : ch;
	}
	reason[k] = 0;
	emit(c, "connectivity:connection_closed", now,
	     "{\"owner\":\"%s\",\"%s\":%llu,\"reason\":\"%s\",\"trigger\":\"%s\"}",
	     owner_local ? "local" : "remote", ci->app ? "application_code" : "connection_code",
	     (unsigned long long)ci->code, reason, triggers[ci->reason <= TERN_CLOSE_ERROR ? ci->reason : 0]);
}
