"""A catalog of common mail senders: their documented SPF include and DKIM selector conventions.

The fix-it flow offers these as "add a sender" choices and as DKIM publishing steps. Values are
what each provider's own setup pages tell customers to publish; where the value is specific to an
account (a HubSpot hub id, a Microsoft tenant), the entry says where to find it instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DkimCname:
    """One CNAME selector: `<selector>._domainkey.<domain>` points to `target`; `{dashed}` in the
    target stands for the domain with dots replaced by dashes, as several providers write it."""

    selector: str
    target: str

    def target_for(self, domain: str) -> str:
        return self.target.replace("{dashed}", domain.replace(".", "-")).replace("{domain}", domain)


@dataclass(frozen=True, kw_only=True)
class MailProvider:
    """One sender: how it is authorised in SPF and how its DKIM key is published."""

    key: str
    name: str
    spf_include: str | None  # None: the provider needs no include in the From domain's SPF
    spf_note: str
    dkim_selectors: tuple[str, ...]
    dkim_cnames: tuple[DkimCname, ...]  # fixed CNAME targets; empty when TXT or account-specific
    dkim_uses_cname: bool
    dkim_steps: str
    # Base domains the provider's mail carries: its DKIM d= when it signs with its own domain, and
    # its sending hosts' reverse-DNS names. Naming a report's sources reads these.
    sending_domains: tuple[str, ...] = ()


PROVIDERS: tuple[MailProvider, ...] = (
    MailProvider(
        key="google",
        name="Google Workspace",
        spf_include="_spf.google.com",
        spf_note="",
        dkim_selectors=("google",),
        dkim_cnames=(),
        dkim_uses_cname=False,
        dkim_steps="Admin console → Apps → Google Workspace → Gmail → Authenticate email: choose 2048-bit, "
        "Generate new record, publish the TXT record it shows at google._domainkey, then Start "
        "authentication.",
        sending_domains=("google.com", "gappssmtp.com", "googlemail.com"),
    ),
    MailProvider(
        key="microsoft",
        name="Microsoft 365",
        spf_include="spf.protection.outlook.com",
        spf_note="",
        dkim_selectors=("selector1", "selector2"),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="Microsoft Defender portal → Email & collaboration → Policies → Email authentication "
        "settings → DKIM: select the domain, publish the two CNAME records it lists "
        "(selector1._domainkey and selector2._domainkey, pointing into your tenant), then Enable. "
        "Microsoft rotates the keys behind the CNAMEs; 2048-bit keys are the default.",
        sending_domains=("outlook.com", "onmicrosoft.com"),
    ),
    MailProvider(
        key="amazonses",
        name="Amazon SES",
        spf_include="amazonses.com",
        spf_note="Amazon SES authorises its own bounce domain by default; the include is needed only when "
        "you set a custom MAIL FROM domain, and then belongs in that domain's SPF.",
        dkim_selectors=(),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="SES console → Verified identities → your domain → Authentication → Easy DKIM (RSA 2048): "
        "publish the three CNAME records it shows (<token>._domainkey → <token>.dkim.amazonses.com).",
        sending_domains=("amazonses.com",),
    ),
    MailProvider(
        key="sendgrid",
        name="SendGrid",
        spf_include="sendgrid.net",
        spf_note="With automated security, SendGrid's bounce subdomain CNAME covers SPF instead.",
        dkim_selectors=("s1", "s2"),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="SendGrid → Settings → Sender Authentication → Authenticate your domain: publish the "
        "CNAME records it lists (s1._domainkey and s2._domainkey → "
        "s1/s2.domainkey.u<id>.wl<id>.sendgrid.net).",
        sending_domains=("sendgrid.net", "sendgrid.com"),
    ),
    MailProvider(
        key="mailgun",
        name="Mailgun",
        spf_include="mailgun.org",
        spf_note="EU-region accounts use include:eu.mailgun.org.",
        dkim_selectors=("pic", "mx", "k1", "smtp"),
        dkim_cnames=(),
        dkim_uses_cname=False,
        dkim_steps="Mailgun → Sending → Domains → your domain → DNS records: publish the DKIM TXT record "
        "shown there (its selector, such as pic._domainkey, is named on that page); Domain settings → DKIM "
        "key size 2048 to rotate a weak key.",
        sending_domains=("mailgun.org", "mailgun.net", "mailgun.com", "mailgun.info", "mailgun.us"),
    ),
    MailProvider(
        key="mailchimp",
        name="Mailchimp",
        spf_include=None,
        spf_note="Mailchimp sends with its own bounce domain, so it needs no include in your SPF.",
        dkim_selectors=("k2", "k3"),
        dkim_cnames=(DkimCname("k2", "dkim2.mcsv.net"), DkimCname("k3", "dkim3.mcsv.net")),
        dkim_uses_cname=True,
        dkim_steps="Mailchimp → Website → Domains → Authenticate: publish k2._domainkey CNAME dkim2.mcsv.net "
        "and k3._domainkey CNAME dkim3.mcsv.net.",
        sending_domains=("mcsv.net", "mailchimpapp.net", "rsgsv.net", "mcdlv.net"),
    ),
    MailProvider(
        key="mandrill",
        name="Mandrill (Mailchimp Transactional)",
        spf_include="spf.mandrillapp.com",
        spf_note="",
        dkim_selectors=("mte1", "mte2"),
        dkim_cnames=(DkimCname("mte1", "dkim1.mandrillapp.com"), DkimCname("mte2", "dkim2.mandrillapp.com")),
        dkim_uses_cname=True,
        dkim_steps="Mandrill → Settings → Domains → Sending domains: publish mte1._domainkey CNAME "
        "dkim1.mandrillapp.com and mte2._domainkey CNAME dkim2.mandrillapp.com.",
        sending_domains=("mandrillapp.com",),
    ),
    MailProvider(
        key="postmark",
        name="Postmark",
        spf_include="spf.mtasv.net",
        spf_note="Postmark's custom Return-Path (pm-bounces CNAME pm.mtasv.net) covers SPF instead.",
        dkim_selectors=(),
        dkim_cnames=(),
        dkim_uses_cname=False,
        dkim_steps="Postmark → Sender Signatures → DNS settings: publish the DKIM TXT record at the "
        "<date>pm._domainkey selector shown there.",
        sending_domains=("mtasv.net", "postmarkapp.com"),
    ),
    MailProvider(
        key="zendesk",
        name="Zendesk",
        spf_include="mail.zendesk.com",
        spf_note="",
        dkim_selectors=("zendesk1", "zendesk2"),
        dkim_cnames=(
            DkimCname("zendesk1", "zendesk1._domainkey.zendesk.com"),
            DkimCname("zendesk2", "zendesk2._domainkey.zendesk.com"),
        ),
        dkim_uses_cname=True,
        dkim_steps="Zendesk Admin Center → Channels → Email → Digitally sign: publish zendesk1._domainkey "
        "and zendesk2._domainkey as CNAMEs to zendesk1/zendesk2._domainkey.zendesk.com.",
        sending_domains=("zendesk.com",),
    ),
    MailProvider(
        key="salesforce",
        name="Salesforce",
        spf_include="_spf.salesforce.com",
        spf_note="",
        dkim_selectors=(),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="Salesforce Setup → DKIM Keys → Create New Key (2048-bit): publish the two CNAME records "
        "it shows (<selector>._domainkey → …custdkim.salesforce.com), then Activate.",
        sending_domains=("salesforce.com",),
    ),
    MailProvider(
        key="hubspot",
        name="HubSpot",
        spf_include=None,
        spf_note="HubSpot gives an account-specific include (<hub id>.spf0<n>.hubspotemail.net) on its "
        "domain-connect page; add it as a free-form include.",
        dkim_selectors=("hs1", "hs2"),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="HubSpot → Settings → Content → Domains & URLs → Connect email sending domain: publish "
        "the two CNAME records (hs1-<hub id>._domainkey and hs2-<hub id>._domainkey) it lists.",
        sending_domains=("hubspotemail.net", "hubspot.com"),
    ),
    MailProvider(
        key="mailjet",
        name="Mailjet",
        spf_include="spf.mailjet.com",
        spf_note="",
        dkim_selectors=("mailjet",),
        dkim_cnames=(),
        dkim_uses_cname=False,
        dkim_steps="Mailjet → Account settings → Domains → Setup SPF/DKIM: publish the TXT record shown at "
        "mailjet._domainkey.",
        sending_domains=("mailjet.com",),
    ),
    MailProvider(
        key="brevo",
        name="Brevo (Sendinblue)",
        spf_include="spf.brevo.com",
        spf_note="",
        dkim_selectors=("brevo1", "brevo2"),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="Brevo → Senders, domains & dedicated IPs → Domains → Authenticate: publish the brevo1 "
        "and brevo2 ._domainkey CNAME records it shows.",
        sending_domains=("sendinblue.com", "brevo.com"),
    ),
    MailProvider(
        key="zoho",
        name="Zoho Mail",
        spf_include="zoho.com",
        spf_note="EU data-centre accounts use include:zoho.eu.",
        dkim_selectors=("zmail",),
        dkim_cnames=(),
        dkim_uses_cname=False,
        dkim_steps="Zoho Mail Admin Console → Domains → your domain → Email configuration → DKIM: add a "
        "selector, publish the TXT record shown, then Verify.",
        sending_domains=("zoho.com", "zoho.eu", "zohomail.com"),
    ),
    MailProvider(
        key="fastmail",
        name="Fastmail",
        spf_include="spf.messagingengine.com",
        spf_note="",
        dkim_selectors=("fm1", "fm2", "fm3"),
        dkim_cnames=tuple(DkimCname(s, f"{s}.{{domain}}.dkim.fmhosted.com") for s in ("fm1", "fm2", "fm3")),
        dkim_uses_cname=True,
        dkim_steps="Fastmail → Settings → Domains → your domain → DNS: publish fm1, fm2 and fm3._domainkey "
        "as CNAMEs to fm1/fm2/fm3.<your domain>.dkim.fmhosted.com.",
        sending_domains=("messagingengine.com", "fastmail.com"),
    ),
    MailProvider(
        key="proton",
        name="Proton Mail",
        spf_include="_spf.protonmail.ch",
        spf_note="",
        dkim_selectors=("protonmail", "protonmail2", "protonmail3"),
        dkim_cnames=(),
        dkim_uses_cname=True,
        dkim_steps="Proton → Settings → Domain names → your domain → DKIM: publish the three CNAME records "
        "(protonmail._domainkey …) it lists.",
        sending_domains=("protonmail.ch", "proton.me"),
    ),
    MailProvider(
        key="sparkpost",
        name="SparkPost",
        spf_include="_spf.sparkpostmail.com",
        spf_note="",
        dkim_selectors=(),
        dkim_cnames=(),
        dkim_uses_cname=False,
        dkim_steps="SparkPost → Configuration → Domains → your sending domain: publish the DKIM TXT record "
        "(scph<MMYY>._domainkey) it shows.",
        sending_domains=("sparkpostmail.com",),
    ),
)

PROVIDERS_BY_KEY: dict[str, MailProvider] = {p.key: p for p in PROVIDERS}
# Includes a provider documents besides its main one (regional variants, older names).
_INCLUDE_ALIASES = {"eu.mailgun.org": "mailgun", "zoho.eu": "zoho", "spf.sendinblue.com": "brevo"}


def provider_for_include(include: str) -> MailProvider | None:
    """The catalog entry whose documented include is `include` (case-insensitive), if any."""
    name = include.strip().rstrip(".").lower()
    for provider in PROVIDERS:
        if provider.spf_include == name:
            return provider
    key = _INCLUDE_ALIASES.get(name)
    return PROVIDERS_BY_KEY.get(key) if key else None


def provider_for_sending_domain(base_domain: str) -> MailProvider | None:
    """The catalog entry whose mail carries `base_domain` (a DKIM d= or reverse-DNS base domain)."""
    name = base_domain.strip().rstrip(".").lower()
    return next((p for p in PROVIDERS if name in p.sending_domains), None)


def providers_for_selector(selector: str) -> tuple[MailProvider, ...]:
    """Providers that publish DKIM keys at `selector` by convention (several may share one)."""
    name = selector.lower()
    return tuple(p for p in PROVIDERS if name in p.dkim_selectors)


__all__ = [
    "PROVIDERS",
    "PROVIDERS_BY_KEY",
    "DkimCname",
    "MailProvider",
    "provider_for_include",
    "provider_for_sending_domain",
    "providers_for_selector",
]
