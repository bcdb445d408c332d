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

import KSR


def setting(name):
    return KSR.pv.get("$sel(cfg_get.stirgate." + name + ")")


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
            if setting("sign_required") == 1:
                KSR.sl.sl_send_reply(KSR.pv.get("$stirgate(sip_code)") or 500,
                                     KSR.pv.get("$stirgate(reason)") or "Server Internal Error")
                return False
        return True

    # ingress verifies and applies the disposition; False when the request
    # has been answered here (rejected in strict mode).
    def ingress(self):
        rc = KSR.stirgate.check()
        if rc == -1:
            KSR.info("stirgate: INVITE %s rejected %s %s\n" % (
                KSR.pv.get("$ci"), KSR.pv.get("$stirgate(sip_code)"), KSR.pv.get("$stirgate(error)")))
            return False
        if rc == -2:
            KSR.err("stirgate: INVITE %s not verified: %s: %s\n" % (
                KSR.pv.get("$ci"), KSR.pv.get("$stirgate(error)"), KSR.pv.get("$stirgate(detail)")))
            if setting("fail_closed") == 1:
                KSR.sl.sl_send_reply(500, "Server Internal Error")
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
        # A retransmission is absorbed here, so it is signed or verified once.
        if KSR.tm.t_check_trans() == 0:
            return 1
        KSR.rr.record_route()
        internal = from_internal()
        if KSR.is_INVITE():
            go_on = self.egress() if internal else self.ingress()
            if not go_on:
                return 1
        if KSR.is_myself_ruri():
            KSR.setdsturi(setting("carrier") if internal else setting("inside"))
        relay()
        return 1


def mod_init():
    return kamailio()
