"""Invented names and the attribute schema of the synthetic families (no real people or places)."""

from __future__ import annotations

import dataclasses

__all__ = ["Attribute", "ATTRIBUTES", "FIRST_NAMES", "SURNAMES", "REVEAL_LEADS", "UPDATE_LEADS", "RETRACT_LEADS"]

FIRST_NAMES = (
    "Ilsa Tomas Mirela Dorian Anouk Casimir Leontine Rafferty Solveig Teodor Yvette Bram Ottilie Emrys Sunniva "
    "Lazlo Petra Idris Marisol Fenna Jovan Clio Arvid Noor"
).split()
SURNAMES = (
    "Varga Holloway Okafor Lindqvist Marchetti Ashdown Penrose Quintero Szabo Whitlock Brannagh Delacroix "
    "Ferreira Kowalczyk Nakagawa Oyelaran Thorne Vasquez Ybarra Zeller"
).split()


@dataclasses.dataclass(frozen=True)
class Attribute:
    """One kind of fact about a person, with its sentence templates.

    Every template is one sentence (``{n}`` is the person, ``{v}`` the value), so a stated
    fact is a sentence a memory can hold on its own.

    Attributes:
        key: Short name.
        values: Possible values (``None``: three-digit numbers).
        state: How the fact is first stated.
        update: How a new value is stated.
        retract: How the fact is withdrawn (the answer becomes ``unknown``).
        question: The Stage-3 question.
    """

    key: str
    values: tuple[str, ...] | None
    state: str
    update: str
    retract: str
    question: str


ATTRIBUTES = (
    Attribute(
        "town",
        (
            "Tamsworth",
            "Orrel",
            "Caldmere",
            "Brindlecombe",
            "Ashford Vale",
            "Pellington",
            "Marrowgate",
            "Dunhollow",
            "Fenwick Cross",
            "Larkspur Bay",
            "Quillby",
            "Rosmere",
            "Stonebridge",
            "Thistleby",
            "Wexcombe",
            "Yarrowdale",
            "Elmstead",
            "Greywater",
            "Hollins End",
            "Kestrel Point",
        ),
        "{n} lives in {v}.",
        "{n} has moved and now lives in {v}.",
        "Forget what I said about where {n} lives, I mixed that up and nobody knows where {n} lives.",
        "In which town does {n} live now?",
    ),
    Attribute(
        "employer",
        (
            "Brightwater Labs",
            "Copperleaf Studio",
            "Northwind Freight",
            "Saltmarsh Bakery",
            "Ironvale Robotics",
            "Bluefern Clinic",
            "Hearthstone Books",
            "Silverline Transit",
            "Quarrystone Print",
            "Lanternfish Games",
            "Mossgrove Gardens",
            "Tidewell Energy",
            "Oakhurst Archives",
            "Redkite Aviation",
            "Juniper Loom",
        ),
        "{n} works at {v}.",
        "{n} changed jobs and now works at {v}.",
        "Ignore what I told you about where {n} works, that was wrong and I have no idea where {n} works.",
        "Where does {n} work now?",
    ),
    Attribute(
        "dog",
        (
            "Biscuit",
            "Pickle",
            "Juniper",
            "Waffles",
            "Ziggy",
            "Pepper",
            "Noodle",
            "Clover",
            "Mango",
            "Rocket",
            "Tansy",
            "Bramble",
            "Sprocket",
            "Olive",
            "Fig",
        ),
        "{n}'s dog is called {v}.",
        "{n} adopted another dog, so {n}'s dog is now called {v}.",
        "Scratch what I said about {n}'s dog, {n} has no dog and the name I gave was made up.",
        "What is the name of {n}'s dog now?",
    ),
    Attribute(
        "locker",
        None,
        "{n}'s locker number is {v}.",
        "{n} was given a new locker, so {n}'s locker number is now {v}.",
        "Disregard the locker number I gave for {n}, it was wrong and {n}'s locker number is unknown.",
        "What is {n}'s locker number now?",
    ),
    Attribute(
        "team",
        (
            "Harbor Hawks",
            "Riverside Otters",
            "Northgate Foxes",
            "Millbrook Herons",
            "Eastfield Badgers",
            "Copper Valley Lynx",
            "Westmoor Falcons",
            "Saltcliff Seals",
            "Pinecrest Owls",
            "Glenhaven Stags",
        ),
        "{n} plays for the {v}.",
        "{n} switched teams and now plays for the {v}.",
        "Take back what I said about {n}'s team, {n} does not play for any team I know of.",
        "Which team does {n} play for now?",
    ),
    Attribute(
        "room",
        None,
        "{n}'s office is room {v}.",
        "{n} moved offices, so {n}'s office is now room {v}.",
        "Forget the office room I mentioned for {n}, I was wrong and nobody knows which room {n} uses.",
        "Which room is {n}'s office now?",
    ),
)

REVEAL_LEADS = (
    "",
    "Oh, a small thing I keep forgetting to mention.",
    "Random detail from my week.",
    "Something I heard at lunch today.",
    "Not important, but still.",
    "While I remember.",
)
UPDATE_LEADS = (
    "Quick update on something from before.",
    "Things have changed since I last told you.",
    "Heads up, that is not current any more.",
    "News on that front.",
)
RETRACT_LEADS = (
    "Wait, I need to take something back.",
    "Sorry, I got something wrong earlier.",
    "Correction, please.",
)
