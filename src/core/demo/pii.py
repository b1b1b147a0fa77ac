"""PII sentences for the token-classification demo (seed 002): Faker ``en_US`` / ``fr_FR``
values (names, e-mails, phone numbers, postal addresses, IBANs, social security numbers, birth
dates) inside realistic sentences, written as ``{"text", "spans"}`` JSON Lines.

Held-out sets must measure generalisation, not template recall: every fourth template belongs
to the ``test`` pool and never appears in ``train``, and the Faker values come from another
seed. ``language: mixed`` draws French and English sentences 50/50 (``french_share``), as seed
002 recommends; about 10 % of sentences hold no PII at all (``no_pii_share``).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from core.formats.jsonl import write_jsonl

ENTITY_TYPES = ["PER", "EMAIL", "PHONE", "ADDRESS", "IBAN", "SSN", "DATE"]

TEMPLATES = {
    "en": [
        "My name is {PER} and you can reach me at {EMAIL}.",
        "Please call {PER} on {PHONE} before noon.",
        "The parcel should be delivered to {ADDRESS} by Friday.",
        "Wire the deposit to IBAN {IBAN} and send the receipt to {EMAIL}.",
        "Patient {PER}, born on {DATE}, social security number {SSN}.",
        "Hi, this is {PER}; my new phone number is {PHONE}.",
        "Could you update my address to {ADDRESS}?",
        "Refunds are paid to the account {IBAN} held by {PER}.",
        "Forward the contract to {EMAIL}, attention {PER}.",
        "Our tenant {PER} moved out of {ADDRESS} last month.",
        "For verification, my SSN is {SSN} and my date of birth is {DATE}.",
        "You can contact the support team at {EMAIL} or {PHONE}.",
        "The invoice was addressed to {PER}, {ADDRESS}.",
        "I was born on {DATE} and I live at {ADDRESS}.",
        "Send the payment to {IBAN}, reference 2024-118.",
        "{PER} asked us to call back on {PHONE} tomorrow.",
        "Employee {PER} (SSN {SSN}) starts on Monday.",
        "Mail the documents to {PER} at {ADDRESS}.",
        "Her email address is {EMAIL} and her phone is {PHONE}.",
        "The account holder, {PER}, confirmed the IBAN {IBAN}.",
        "Date of birth: {DATE}. Phone: {PHONE}.",
        "Thanks for your order, {PER}! A confirmation was sent to {EMAIL}.",
        "The meeting is confirmed for Tuesday in the main office.",
        "Please review the attached report before the next sprint.",
    ],
    "fr": [
        "Je m'appelle {PER} et vous pouvez m'écrire à {EMAIL}.",
        "Merci de rappeler {PER} au {PHONE} avant midi.",
        "Le colis doit être livré au {ADDRESS} avant vendredi.",
        "Veuillez virer l'acompte sur l'IBAN {IBAN} et envoyer le reçu à {EMAIL}.",
        "Patient {PER}, né le {DATE}, numéro de sécurité sociale {SSN}.",
        "Bonjour, c'est {PER} ; mon nouveau numéro est le {PHONE}.",
        "Pourriez-vous mettre à jour mon adresse : {ADDRESS} ?",
        "Les remboursements sont versés sur le compte {IBAN} au nom de {PER}.",
        "Transmettez le contrat à {EMAIL}, à l'attention de {PER}.",
        "Notre locataire {PER} a quitté le {ADDRESS} le mois dernier.",
        "Pour vérification, mon numéro de sécurité sociale est {SSN} et je suis né le {DATE}.",
        "Vous pouvez joindre le support à {EMAIL} ou au {PHONE}.",
        "La facture est adressée à {PER}, {ADDRESS}.",
        "Je suis née le {DATE} et j'habite au {ADDRESS}.",
        "Envoyez le paiement sur {IBAN}, référence 2024-118.",
        "{PER} nous demande de le rappeler demain au {PHONE}.",
        "La salariée {PER} (NIR {SSN}) commence lundi.",
        "Envoyez les pièces à {PER}, {ADDRESS}.",
        "Son adresse électronique est {EMAIL} et son téléphone le {PHONE}.",
        "Le titulaire du compte, {PER}, a confirmé l'IBAN {IBAN}.",
        "Date de naissance : {DATE}. Téléphone : {PHONE}.",
        "Merci pour votre commande, {PER} ! Une confirmation a été envoyée à {EMAIL}.",
        "La réunion est confirmée pour mardi dans les locaux principaux.",
        "Merci de relire le rapport joint avant le prochain comité.",
    ],
}
MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
}
LOCALES = {"en": "en_US", "fr": "fr_FR"}
_SLOT = re.compile(r"\{([A-Z]+)\}")


def templates(language: str, pool: str) -> list[str]:
    if language not in TEMPLATES:
        raise ValueError(f"language must be en, fr or mixed, got {language!r}")
    if pool not in ("train", "test"):
        raise ValueError(f"pool must be train or test, got {pool!r}")
    all_t = TEMPLATES[language]
    return [t for i, t in enumerate(all_t) if (i % 4 == 3) == (pool == "test")]


def _grouped(value: str, rng: random.Random, size: int = 4) -> str:
    compact = value.replace(" ", "")
    return " ".join(compact[i : i + size] for i in range(0, len(compact), size)) if rng.random() < 0.5 else compact


def _value(fake, kind: str, language: str, rng: random.Random) -> str:
    if kind == "PER":
        return fake.name() if rng.random() < 0.7 else f"{fake.first_name()} {fake.last_name()}"
    if kind == "EMAIL":
        return fake.email() if rng.random() < 0.6 else fake.free_email()
    if kind == "PHONE":
        return fake.phone_number()
    if kind == "ADDRESS":
        return fake.address().replace("\n", ", ")
    if kind == "IBAN":
        return _grouped(fake.iban(), rng)
    if kind == "SSN":
        ssn = fake.ssn()
        if language == "fr" and rng.random() < 0.5 and len(ssn) == 15:  # NIR written in groups
            return " ".join([ssn[0], ssn[1:3], ssn[3:5], ssn[5:7], ssn[7:10], ssn[10:13], ssn[13:]])
        return ssn
    if kind == "DATE":
        d = fake.date_of_birth(minimum_age=18, maximum_age=90)
        if rng.random() < 0.5:
            return d.strftime("%d/%m/%Y" if language == "fr" else "%m/%d/%Y")
        month = MONTHS[language][d.month - 1]
        return f"{d.day} {month} {d.year}" if language == "fr" else f"{month} {d.day}, {d.year}"
    raise ValueError(f"unknown PII type {kind!r}")


def render(template: str, fake, language: str, rng: random.Random) -> dict:
    """Fill a template; return ``{"text", "spans"}`` with exact character offsets."""
    text, spans, last = "", [], 0
    for m in _SLOT.finditer(template):
        text += template[last : m.start()]
        value = _value(fake, m.group(1), language, rng)
        spans.append({"start": len(text), "end": len(text) + len(value), "label": m.group(1)})
        text += value
        last = m.end()
    text += template[last:]
    return {"text": text, "spans": spans}


def pii_sentences(
    out: Path,
    language: str = "en",
    count: int = 500,
    pool: str = "train",
    seed: int = 0,
    french_share: float = 0.5,
    no_pii_share: float = 0.1,
) -> Path:
    """Write ``sentences.jsonl``: ``count`` sentences of the given language (en, fr or mixed)."""
    from faker import Faker

    rng = random.Random(f"{seed}-{pool}-{language}")
    fakers = {}
    for code, locale in LOCALES.items():
        fake = Faker(locale)
        fake.seed_instance(f"{seed}-{pool}-{code}")
        fakers[code] = fake
    languages = ["en", "fr"] if language == "mixed" else [language]
    pools = {code: templates(code, pool) for code in languages}
    rows = []
    for i in range(count):
        code = languages[0] if len(languages) == 1 else ("fr" if rng.random() < french_share else "en")
        with_pii = [t for t in pools[code] if "{" in t]
        without = [t for t in pools[code] if "{" not in t]
        template = rng.choice(without if (without and rng.random() < no_pii_share) else with_pii)
        row = render(template, fakers[code], code, rng)
        rows.append({"id": f"{code}-{pool}-{seed}-{i}", "language": code, **row})
    out.mkdir(parents=True, exist_ok=True)
    return write_jsonl(out / "sentences.jsonl", rows)
