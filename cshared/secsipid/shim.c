// The public functions of secsipid.h. Compiled against the header, so the
// compiler checks that the header and the library agree; each forwards to
// its Go export of main.go (sgsip_*), which the version script
// (libsecsipid.map) keeps out of the dynamic symbol table.
//
// Each first checks that it runs in the process that loaded the library.
// The Go runtime starts when the library is loaded and does not survive
// fork(): in a forked child the first call into Go waits forever for
// threads that are gone. Go cannot run the check itself (entering Go is
// what hangs) and a pthread_atfork handler cannot repair the runtime, so
// the check is here, in C, before any cgo call. In a forked child each
// function returns its documented failure (SECSIPID_EFORK, or -1 for the
// option functions) with its outputs cleared.

#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "secsipid.h"
#include "_cgo_export.h"

/* The process that loaded the library: a constructor runs at load
 * (dlopen, or program start for a linked library), before any call. */
static pid_t sg_load_pid;
static int sg_fork_told;

__attribute__((constructor)) static void sg_record_load_pid(void)
{
	sg_load_pid = getpid();
}

/* sg_forked reports whether this process is not the one that loaded the
 * library, and says so on stderr once per process: the API has no error
 * message channel, and a worker that fails every call should say why. */
static int sg_forked(void)
{
	pid_t pid = getpid();

	if(pid == sg_load_pid)
		return 0;
	if(!sg_fork_told) {
		sg_fork_told = 1;
		fprintf(stderr, "libsecsipid (stirgate): loaded in process %d; process %d "
				"was forked from it afterwards and the Go runtime does not survive "
				"fork(): every call fails with %d. Load the library after fork().\n",
				(int)sg_load_pid, (int)pid, SECSIPID_EFORK);
	}
	return 1;
}

#define SG_CLEAR(p) do { if((p) != NULL) *(p) = NULL; } while(0)

int SecSIPIDSignJSONHP(char *headerJSON, char *payloadJSON, char *prvkeyPath,
		char **outPtr)
{
	if(sg_forked()) {
		SG_CLEAR(outPtr);
		return SECSIPID_EFORK;
	}
	return sgsip_SecSIPIDSignJSONHP(headerJSON, payloadJSON, prvkeyPath, outPtr);
}

int SecSIPIDSignJSONHPPrvKey(char *headerJSON, char *payloadJSON,
		char *prvkeyData, char **outPtr)
{
	if(sg_forked()) {
		SG_CLEAR(outPtr);
		return SECSIPID_EFORK;
	}
	return sgsip_SecSIPIDSignJSONHPPrvKey(headerJSON, payloadJSON, prvkeyData, outPtr);
}

int SecSIPIDGetIdentity(char *origTN, char *destTN, char *attestVal,
		char *origID, char *x5uVal, char *prvkeyPath, char **outPtr)
{
	if(sg_forked()) {
		SG_CLEAR(outPtr);
		return SECSIPID_EFORK;
	}
	return sgsip_SecSIPIDGetIdentity(origTN, destTN, attestVal, origID, x5uVal,
			prvkeyPath, outPtr);
}

int SecSIPIDGetIdentityPrvKey(char *origTN, char *destTN, char *attestVal,
		char *origID, char *x5uVal, char *prvkeyData, char **outPtr)
{
	if(sg_forked()) {
		SG_CLEAR(outPtr);
		return SECSIPID_EFORK;
	}
	return sgsip_SecSIPIDGetIdentityPrvKey(origTN, destTN, attestVal, origID,
			x5uVal, prvkeyData, outPtr);
}

int SecSIPIDCheck(char *identityVal, int identityLen, int expireVal,
		char *pubkeyPath, int timeoutVal)
{
	if(sg_forked())
		return SECSIPID_EFORK;
	return sgsip_SecSIPIDCheck(identityVal, identityLen, expireVal, pubkeyPath,
			timeoutVal);
}

int SecSIPIDCheckFull(char *identityVal, int identityLen, int expireVal,
		char *pubkeyPath, int timeoutVal)
{
	if(sg_forked())
		return SECSIPID_EFORK;
	return sgsip_SecSIPIDCheckFull(identityVal, identityLen, expireVal,
			pubkeyPath, timeoutVal);
}

int SecSIPIDCheckFullPubKey(char *identityVal, int identityLen, int expireVal,
		char *pubkeyVal, int pubkeyLen)
{
	if(sg_forked())
		return SECSIPID_EFORK;
	return sgsip_SecSIPIDCheckFullPubKey(identityVal, identityLen, expireVal,
			pubkeyVal, pubkeyLen);
}

int SecSIPIDSetFileCacheOptions(char *dirPath, int expireVal)
{
	if(sg_forked())
		return -1;
	return sgsip_SecSIPIDSetFileCacheOptions(dirPath, expireVal);
}

int SecSIPIDGetURLContent(char *urlVal, int timeoutVal, char **outPtr,
		int *outLen)
{
	if(sg_forked()) {
		SG_CLEAR(outPtr);
		if(outLen != NULL)
			*outLen = 0;
		return SECSIPID_EFORK;
	}
	return sgsip_SecSIPIDGetURLContent(urlVal, timeoutVal, outPtr, outLen);
}

int SecSIPIDOptSetS(char *optName, char *optVal)
{
	if(sg_forked())
		return -1;
	return sgsip_SecSIPIDOptSetS(optName, optVal);
}

int SecSIPIDOptSetN(char *optName, int optVal)
{
	if(sg_forked())
		return -1;
	return sgsip_SecSIPIDOptSetN(optName, optVal);
}

int SecSIPIDOptSetV(char *optNameVal)
{
	if(sg_forked())
		return -1;
	return sgsip_SecSIPIDOptSetV(optNameVal);
}

int SecSIPIDOptGetN(char *optName)
{
	if(sg_forked())
		return -1;
	return sgsip_SecSIPIDOptGetN(optName);
}
