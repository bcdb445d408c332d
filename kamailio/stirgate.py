# stirgate.py - STIR/SHAKEN in Kamailio through the native stirgate module,
# routed by KEMI in Python (app_python3; see kamailio-python.cfg). The same
# routes as kamailio-native.cfg:
#
# Egress: an initial INVITE from an internal source (stirgate.internal) is
# signed by KSR.stirgate.sign(), with the attestation chosen by the [policy]
# of the stirgate configuration, and relayed to stirgate.carrier.
# Ingress: an initial INVITE from anywhere else goes through
# KSR.stirgate.check(): verstat on From and P-Asserted-Identity, a reply in
# strict mode, a Reason header in relaxed mode; it is relayed to
# stirgate.inside. A Request-URI that does not name this proxy is routed as
# it is.
#
# Return codes of KSR.stirgate.* are those of the cfg functions
# (kamailio/module/README.md); the result is in $stirgate(...), read with
# KSR.pv.get. Fork safety is the module's business: it loads libstirgate in
# the SIP workers only, so this script may run in the main process too.
#
# The transaction is created (KSR.tm.t_newtran) before signing or
# verifying, which may wait for a certificate fetch: a retransmission that
# arrives meanwhile, at this worker or another, is answered from the
# transaction, never verified again. Replies go through it (KSR.tm.t_reply;
# the module's strict-mode reject uses sl's send_reply, which is stateful
# once a transaction exists).

import KSR


def setting(name):
    return KSR.pv.get("$sel(cfg_get.stirgate." + name + ")")


# flag reads a 0/1 setting, whichever type $sel gives its value in.
def flag(name):
    return str(setting(name)).strip() == "1"


# pv reads a pseudo-variable for a log line: <null> for $null.
def pv(name):
    v = KSR.pv.get(name)
    return "<null>" if v is None else str(v)


def from_internal():
    items = [i.strip() for i in (setting("internal") or "").split(",")]
    si, sp = KSR.pv.get("$si"), KSR.pv.get("$sp")
    return si in items or "%s:%s" % (si, sp) in items


def relay():
    if KSR.tm.t_relay() < 0:
        KSR.sl.sl_reply_error()


class kamailio:
    def child_init(self, rank):
        return 0

    # app_python3 calls it for every message sent; nothing to do here.
    def ksr_onsend_route(self, msg):
        return 1

    # egress signs; False when the request has been answered here.
    def egress(self):
        rc = KSR.stirgate.sign()
        if rc in (-1, -2):
            KSR.warn("stirgate: INVITE %s not signed: %s: %s\n" % (
                KSR.pv.get("$ci"), KSR.pv.get("$stirgate(error)"), KSR.pv.get("$stirgate(detail)")))
            if flag("sign_required"):
                KSR.tm.t_reply(int(KSR.pv.get("$stirgate(sip_code)") or 500),
                               KSR.pv.get("$stirgate(reason)") or "Server Internal Error")
                return False
        return True

    # ingress verifies and applies the disposition; False when the request
    # has been answered here (rejected in strict mode).
    def ingress(self):
        rc = KSR.stirgate.check()
        if flag("log_results"):
            KSR.info("stirgate: INVITE %s checked: result=%s verstat=%s sip_code=%s error=%s div=%s rcd_nam=%s rcd_crn=%s\n" % (
                KSR.pv.get("$ci"), pv("$stirgate(result)"), pv("$stirgate(verstat)"), pv("$stirgate(sip_code)"),
                pv("$stirgate(error)"), pv("$stirgate(div)"), pv("$stirgate(rcd_nam)"), pv("$stirgate(rcd_crn)")))
        if rc == -1:
            KSR.info("stirgate: INVITE %s rejected %s %s\n" % (
                KSR.pv.get("$ci"), KSR.pv.get("$stirgate(sip_code)"), KSR.pv.get("$stirgate(error)")))
            return False
        if rc == -2:
            KSR.err("stirgate: INVITE %s not verified: %s: %s\n" % (
                KSR.pv.get("$ci"), KSR.pv.get("$stirgate(error)"), KSR.pv.get("$stirgate(detail)")))
            if flag("fail_closed"):
                KSR.tm.t_reply(500, "Server Internal Error")
                return False
        return True

    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return 1
        in_dialog = KSR.siputils.has_totag() > 0
        if KSR.is_OPTIONS() and KSR.is_myself_ruri() and not in_dialog:
            KSR.sl.sl_send_reply(200, "Keepalive")
            return 1
        if in_dialog:
            if KSR.rr.loose_route() > 0:
                relay()
            elif KSR.is_ACK() and KSR.tm.t_check_trans() > 0:
                relay()
            return 1
        if KSR.is_CANCEL():
            if KSR.tm.t_check_trans() > 0:
                relay()
            return 1
        # A retransmission of a request whose transaction exists is absorbed
        # here (answered from the transaction), never signed or verified again.
        if KSR.tm.t_check_trans() == 0:
            return 1
        KSR.rr.record_route()
        internal = from_internal()
        if KSR.is_INVITE():
            # The transaction first: a retransmission that arrives while this
            # INVITE is signed or verified (a certificate fetch may take
            # seconds) matches it in t_check_trans above, in any worker, and
            # is absorbed instead of being verified again.
            rc = KSR.tm.t_newtran()
            if rc == 0:
                return 1  # a retransmission that won the race: absorbed
            if rc < 0:
                KSR.sl.sl_reply_error()
                return 1
            go_on = self.egress() if internal else self.ingress()
            if not go_on:
                return 1
        if KSR.is_myself_ruri():
            KSR.setdsturi(setting("carrier") if internal else setting("inside"))
        relay()
        return 1


def mod_init():
    return kamailio()
