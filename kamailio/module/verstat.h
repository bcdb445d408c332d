#ifndef STIRGATE_VERSTAT_H
#define STIRGATE_VERSTAT_H

/* strip_verstat copies v into out (at least strlen(v) + 1 bytes) without
 * its ;verstat=... parameters (any case, spaces around the name and '='
 * allowed); the value ends at ';', '@', '>' or ','. Returns 1 when
 * something was removed, else 0. */
int strip_verstat(const char *v, char *out);

#endif
