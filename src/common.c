#include <stdarg.h>
#include <stdio.h>

#include "tern/common.h"

const char *tern_strerror(int err)
{
	if (tern_err_is_quic(err))
		return "QUIC transport error";
	switch (err) {
	case TERN_OK: return "ok";
	case TERN_ERR_TRUNCATED: return "input truncated";
	case TERN_ERR_NOBUF: return "output buffer too small";
	case TERN_ERR_INVAL: return "invalid argument";
	case TERN_ERR_CRYPTO: return "crypto library failure";
	case TERN_ERR_DECRYPT: return "decryption failed";
	case TERN_ERR_VERSION: return "unsupported QUIC version";
	case TERN_ERR_NOMEM: return "out of memory or table full";
	case TERN_ERR_LIMIT: return "limit reached";
	case TERN_ERR_MALFORMED: return "malformed packet";
	case TERN_ERR_STATE: return "invalid state";
	case TERN_ERR_IO: return "I/O error";
	}
	return "unknown error";
}

void tern_errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* one line, whatever a library or a driver put in it */
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}
