/*
 * secsipid_bench: measures Debian's libsecsipid (the library behind
 * secsipidx and Kamailio's secsipid module) signing and checking SHAKEN
 * Identity headers, so that `stirgate bench --secsipid` can print
 * stirgate's rates beside it from the same run on the same machine.
 *
 * It runs in a process of its own: libsecsipid is a Go c-shared library
 * and two Go runtimes cannot share one process.
 *
 * usage: secsipid_bench KEY.pem PUB.pem SECONDS
 * prints: {"sign_cpu_ns_per_op":N,"verify_cpu_ns_per_op":N,"sign_ops":N,"verify_ops":N}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <secsipid.h>

static char *slurp(const char *path) {
	FILE *f = fopen(path, "rb");
	if (!f) { perror(path); exit(2); }
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc(n + 1);
	if (!b || fread(b, 1, n, f) != (size_t)n) { perror(path); exit(2); }
	b[n] = 0;
	fclose(f);
	return b;
}

static double cpu_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double wall_s(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: %s KEY.pem PUB.pem SECONDS\n", argv[0]);
		return 2;
	}
	char *key = slurp(argv[1]);
	char *pub = slurp(argv[2]);
	double secs = atof(argv[3]);
	char x5u[] = "https://certs.example.net/sp.pem";
	char orig[] = "12155550121", dest[] = "12155550131", attest[] = "A";
	char origid[] = "123e4567-e89b-12d3-a456-426614174000";

	char *id = NULL;
	if (SecSIPIDGetIdentityPrvKey(orig, dest, attest, origid, x5u, key, &id) <= 0 || !id) {
		fprintf(stderr, "secsipid: signing failed\n");
		return 1;
	}
	if (SecSIPIDCheckFullPubKey(id, 0, 3600, pub, 0) != 0) {
		fprintf(stderr, "secsipid: its own identity does not check\n");
		return 1;
	}

	long sops = 0;
	double c0 = cpu_ns(), end = wall_s() + secs;
	while (wall_s() < end) {
		for (int i = 0; i < 16; i++) {
			char *out = NULL;
			if (SecSIPIDGetIdentityPrvKey(orig, dest, attest, origid, x5u, key, &out) <= 0) return 1;
			free(out);
		}
		sops += 16;
	}
	double sign_cpu = cpu_ns() - c0;

	long vops = 0;
	c0 = cpu_ns();
	end = wall_s() + secs;
	while (wall_s() < end) {
		for (int i = 0; i < 16; i++)
			if (SecSIPIDCheckFullPubKey(id, 0, 3600, pub, 0) != 0) return 1;
		vops += 16;
	}
	double verify_cpu = cpu_ns() - c0;
	printf("{\"sign_cpu_ns_per_op\":%.0f,\"verify_cpu_ns_per_op\":%.0f,\"sign_ops\":%ld,\"verify_ops\":%ld}\n",
	       sign_cpu / sops, verify_cpu / vops, sops, vops);
	free(id);
	free(key);
	free(pub);
	return 0;
}
