/*
 * verstat.c - the module's one parser of network input of its own: the
 * removal of inbound ;verstat= parameters from a From or
 * P-Asserted-Identity value when the library cannot be asked. No Kamailio
 * headers, so that the Go fuzz test (verstat/) compiles it as it is.
 */
#include <string.h>
#include <strings.h>

#include "verstat.h"

/* strip_verstat removes every ;verstat=... parameter (any case) from a
 * copy of v: the fallback when the library cannot be asked, so that no
 * verstat from outside travels on as if this proxy had set it. 1 when
 * something was removed. */
int strip_verstat(const char *v, char *out)
{
	const char *p = v;
	char *o = out;
	int removed = 0;

	while(*p != '\0') {
		if(*p == ';') {
			const char *q = p + 1;
			while(*q == ' ' || *q == '\t')
				q++;
			if(strncasecmp(q, "verstat", 7) == 0) {
				q += 7;
				while(*q == ' ' || *q == '\t')
					q++;
				if(*q == '=') {
					q++;
					while(*q != '\0' && *q != ';' && *q != '@' && *q != '>'
							&& *q != ',')
						q++;
					p = q;
					removed = 1;
					continue;
				}
			}
		}
		*o++ = *p++;
	}
	*o = '\0';
	return removed;
}

