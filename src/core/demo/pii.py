"""PII sentences for the token-classification demo: Faker ``en_US`` / ``fr_FR``
values (names, e-mails, phone numbers, postal addresses, IBANs, social security numbers, birth
dates) inside realistic sentences, written as ``{"text", "spans"}`` JSON Lines.

Held-out sets must measure generalisation, not template recall: ``test``-pool templates never
appear in ``train`` (each pool holds every PII type), and the Faker values come from another
seed. ``language: mixed`` draws French and English sentences 50/50 (``french_share``), as seed
002 recommends; about 10 % of sentences hold no PII at all (``no_pii_share``).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from core.formats.jsonl import write_jsonl

ENTITY_TYPES = ["PER", "EMAIL", "PHONE", "ADDRESS", "IBAN", "SSN", "DATE"]

# Sentence templates, split once and for all: the ``test`` pool never appears in training.
# Every PII type appears in several templates of each pool.
TEMPLATES = {
    "en": {
        "train": [
            "My name is {PER} and you can reach me at {EMAIL}.",
            "Please call {PER} on {PHONE} before noon.",
            "The parcel should be delivered to {ADDRESS} by Friday.",
            "Patient {PER}, born on {DATE}, social security number {SSN}.",
            "Hi, this is {PER}; my new phone number is {PHONE}.",
            "Could you update my address to {ADDRESS}?",
            "Forward the contract to {EMAIL}, attention {PER}.",
            "Our tenant {PER} moved out of {ADDRESS} last month.",
            "For verification, my SSN is {SSN} and my date of birth is {DATE}.",
            "The invoice was addressed to {PER}, {ADDRESS}.",
            "I was born on {DATE} and I live at {ADDRESS}.",
            "Send the payment to {IBAN}, reference 2024-118.",
            "Employee {PER} (SSN {SSN}) starts on Monday.",
            "Her email address is {EMAIL} and her phone is {PHONE}.",
            "Date of birth: {DATE}. Phone: {PHONE}.",
            "Thanks for your order, {PER}! A confirmation was sent to {EMAIL}.",
            "Please wire the refund to account {IBAN} in the name of {PER}.",
            "Our bank details changed: the new IBAN is {IBAN}.",
            "The claim form lists {SSN} as the insured person's number.",
            "Reply to {EMAIL} if the address {ADDRESS} is wrong.",
            "In case of emergency, contact {PER} at {PHONE}.",
            "{PER} signed the lease on {DATE}.",
            "Salary is paid monthly to IBAN {IBAN}.",
            "Registered office: {ADDRESS}. Contact: {EMAIL}.",
            "The applicant, {PER}, was born on {DATE} and holds SSN {SSN}.",
            "Text me at {PHONE} when you arrive.",
            "I forgot my password; my login email is {EMAIL}.",
            "The meeting is confirmed for Tuesday in the main office.",
            "Please review the attached report before the next sprint.",
            "The quarterly results will be published next week.",
        ],
        "test": [
            "Wire the deposit to IBAN {IBAN} and send the receipt to {EMAIL}.",
            "You can contact the support team at {EMAIL} or {PHONE}.",
            "{PER} asked us to call back on {PHONE} tomorrow.",
            "The account holder, {PER}, confirmed the IBAN {IBAN}.",
            "Mail the documents to {PER} at {ADDRESS}.",
            "According to the file, {PER} was born on {DATE}.",
            "His social security number, {SSN}, appears on the payslip.",
            "Ship it to {ADDRESS} and bill my account {IBAN}.",
            "New hire: {PER}, date of birth {DATE}, SSN {SSN}, phone {PHONE}.",
            "The printer on the second floor is out of order again.",
        ],
    },
    "fr": {
        "train": [
            "Je m'appelle {PER} et vous pouvez m'écrire à {EMAIL}.",
            "Merci de rappeler {PER} au {PHONE} avant midi.",
            "Le colis doit être livré au {ADDRESS} avant vendredi.",
            "Patient {PER}, né le {DATE}, numéro de sécurité sociale {SSN}.",
            "Bonjour, c'est {PER} ; mon nouveau numéro est le {PHONE}.",
            "Pourriez-vous mettre à jour mon adresse : {ADDRESS} ?",
            "Transmettez le contrat à {EMAIL}, à l'attention de {PER}.",
            "Notre locataire {PER} a quitté le {ADDRESS} le mois dernier.",
            "Pour vérification, mon numéro de sécurité sociale est {SSN} et je suis né le {DATE}.",
            "La facture est adressée à {PER}, {ADDRESS}.",
            "Je suis née le {DATE} et j'habite au {ADDRESS}.",
            "Envoyez le paiement sur {IBAN}, référence 2024-118.",
            "La salariée {PER} (NIR {SSN}) commence lundi.",
            "Son adresse électronique est {EMAIL} et son téléphone le {PHONE}.",
            "Date de naissance : {DATE}. Téléphone : {PHONE}.",
            "Merci pour votre commande, {PER} ! Une confirmation a été envoyée à {EMAIL}.",
            "Merci de virer le remboursement sur le compte {IBAN} au nom de {PER}.",
            "Nos coordonnées bancaires changent : le nouvel IBAN est {IBAN}.",
            "Le formulaire indique {SSN} comme numéro de l'assuré.",
            "Répondez à {EMAIL} si l'adresse {ADDRESS} est erronée.",
            "En cas d'urgence, contactez {PER} au {PHONE}.",
            "{PER} a signé le bail le {DATE}.",
            "Le salaire est versé chaque mois sur l'IBAN {IBAN}.",
            "Siège social : {ADDRESS}. Contact : {EMAIL}.",
            "Le candidat, {PER}, est né le {DATE} et son NIR est {SSN}.",
            "Envoyez-moi un SMS au {PHONE} en arrivant.",
            "J'ai oublié mon mot de passe ; mon identifiant est {EMAIL}.",
            "La réunion est confirmée pour mardi dans les locaux principaux.",
            "Merci de relire le rapport joint avant le prochain comité.",
            "Les résultats trimestriels seront publiés la semaine prochaine.",
        ],
        "test": [
            "Veuillez virer l'acompte sur l'IBAN {IBAN} et envoyer le reçu à {EMAIL}.",
            "Vous pouvez joindre le support à {EMAIL} ou au {PHONE}.",
            "{PER} nous demande de le rappeler demain au {PHONE}.",
            "Le titulaire du compte, {PER}, a confirmé l'IBAN {IBAN}.",
            "Envoyez les pièces à {PER}, {ADDRESS}.",
            "D'après le dossier, {PER} est né le {DATE}.",
            "Son numéro de sécurité sociale, {SSN}, figure sur la fiche de paie.",
            "Livrez au {ADDRESS} et prélevez sur mon compte {IBAN}.",
            "Nouvelle recrue : {PER}, née le {DATE}, NIR {SSN}, téléphone {PHONE}.",
            "L'imprimante du deuxième étage est encore en panne.",
        ],
    },
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
    return list(TEMPLATES[language][pool])


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
