"""Every form of the back office applies the API's limits: on the rich dataset, each text field of each form the crawl
reaches (add and change pages, operator actions, the plan editor) is posted alone with 3,000 characters, more than any
limit of the spec; the page answers with an error on that field, never a 500 and never a save. Fields whose API
counterpart has no limit are listed with the reason."""

import re
from html.parser import HTMLParser

import pytest

from tests.admin.rich_data import RichData
from tests.admin.test_crawl import crawl, pattern

LONG = "x" * 3000
TEXT_INPUTS = ("text", "textarea", "email", "url", "password", "search")
NO_API_LIMIT = {
    # the spec's Address has no maxLength (customers' billing address, billing profiles' supplier)
    "address_line1", "address_line2", "address_city", "address_postal_code", "address_state", "address_phone_number",
    "line1", "line2", "city", "postal_code", "state", "phone_number",
    # a feature's LLM unit cost and advanced group-by filters are JSON objects without limits in the spec
    "llm_provider", "llm_provider_property", "llm_model", "llm_model_property", "llm_token_type_property",
    "advanced_filters",
    # a static entitlement's config: the JSON text the application reads, no limit in the spec
    "config",
    # django-celery-beat's own fields and Django's users, which the API does not write
    "headers", "description@django_celery_beat", "password1", "password2",
}


class PostForms(HTMLParser):
    """The POST forms of a page: their action and fields (name, value, input type) as the browser would send them."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.form: dict | None = None
        self.textarea: list | None = None
        self.select: list | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self.form = {"action": a.get("action") or "", "fields": []}
            self.forms.append(self.form)
        if self.form is None or (not a.get("name") and tag != "option"):
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            unchecked = kind in ("checkbox", "radio") and "checked" not in a
            if not unchecked and kind not in ("submit", "button", "file", "image", "reset"):
                self.form["fields"].append((a["name"], a.get("value") or "", kind))
        elif tag == "textarea":
            self.textarea = [a["name"], ""]
        elif tag == "select":
            self.select = [a["name"], None, None]
        elif tag == "option" and self.select is not None:
            self.select[2] = a.get("value", "") if self.select[2] is None else self.select[2]
            self.select[1] = a.get("value", "") if "selected" in a else self.select[1]

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.textarea[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.form = None
        elif tag == "textarea" and self.textarea and self.form is not None:
            self.form["fields"].append((self.textarea[0], self.textarea[1].lstrip("\n"), "textarea"))
            self.textarea = None
        elif tag == "select" and self.select and self.form is not None:
            self.form["fields"].append((self.select[0], self.select[1] if self.select[1] is not None
                                         else self.select[2] or "", "select"))
            self.select = None


def form_field(name: str) -> str:
    """The form field behind an input: `metadata__key` (key/value rows) and `expires_0` (split widgets) are parts."""
    return re.sub(r"_\d$", "", name.split("__")[0])


def form_pages(statuses: dict[str, int]) -> list[str]:
    """One page per link pattern that may hold a form: not lists, deletions, histories or pop-ups."""
    pages: dict[str, str] = {}
    for url, status in sorted(statuses.items()):
        if status != 200 or re.search(r"/delete/|/history/|_to_field|_popup|^/admin/([a-z_]+/){0,2}(\?.*)?$", url):
            continue
        pages.setdefault(pattern(url), url)
    return list(pages.values())


@pytest.mark.django_db
def test_every_form_refuses_text_longer_than_the_api_takes_with_an_error_on_the_field(admin_client, api, settings):
    settings.OPENMETER_WEBHOOK_ALLOW_PRIVATE = True
    RichData(api).build()
    statuses, _ = crawl(admin_client, "/admin/")
    admin_client.raise_request_exception = False  # a 500 is a finding, reported below
    problems, checked = [], 0
    for url in form_pages(statuses):
        parser = PostForms()
        parser.feed(admin_client.get(url).content.decode())
        for form in parser.forms:
            texts = [n for n, _, kind in form["fields"] if kind in TEXT_INPUTS and n != "csrfmiddlewaretoken"]
            for name in dict.fromkeys(texts):
                field = form_field(name)
                if field in NO_API_LIMIT or f"{field}@{url.split('/')[2]}" in NO_API_LIMIT:
                    continue
                data: dict[str, list[str]] = {}
                for n, value, _ in form["fields"]:
                    data.setdefault(n, []).append(LONG if n == name and not data.get(n) else value)
                response = admin_client.post(form["action"] or url, data)
                checked += 1
                form_shown = (response.context or {}).get("adminform")
                form_shown = form_shown.form if form_shown is not None else (response.context or {}).get("form")
                if response.status_code != 200 or form_shown is None or field not in form_shown.errors:
                    problems.append(f"{url} {name}: {response.status_code}, errors on "
                                    f"{sorted(form_shown.errors) if form_shown is not None else '-'}")
    assert not problems, "\n".join(problems)
    assert checked > 50  # the forms were reached
