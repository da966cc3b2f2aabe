"""Product catalogue of the sample chain: categories, prices, packs and demand classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Demand classes of the Syntetos-Boylan scheme (ADI / CV^2 of non-zero demand).
SMOOTH, ERRATIC, INTERMITTENT, LUMPY = 0, 1, 2, 3
CLASS_NAMES = ("smooth", "erratic", "intermittent", "lumpy")


@dataclass(frozen=True)
class Category:
    name: str
    share: float  # share of the assortment
    cost: tuple[float, float]  # unit cost range (log-uniform)
    margin: tuple[float, float]  # gross margin on the regular price
    packs: tuple[int, ...]
    kg_per_dollar: tuple[float, float]  # unit weight scales loosely with cost
    litres_per_kg: tuple[float, float]
    class_mix: tuple[float, float, float, float]  # smooth, erratic, intermittent, lumpy
    promo_share: float  # fraction of products that get promoted
    weekly: tuple[float, ...]  # Monday..Sunday relative demand
    items: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("grocery", 0.26, (0.8, 9.0), (0.22, 0.40), (12, 24), (0.08, 0.5), (0.9, 1.6),
             (0.60, 0.15, 0.20, 0.05), 0.7, (0.88, 0.82, 0.86, 0.95, 1.12, 1.32, 1.05),
             ("Pasta", "Basmati Rice", "Ground Coffee", "Breakfast Cereal", "Olive Oil",
              "Peanut Butter", "Tomato Sauce", "Canned Beans", "Granola Bars", "Tortilla Chips",
              "Honey", "Oatmeal", "Crackers", "Chicken Broth", "Maple Syrup")),
    Category("beverages", 0.12, (0.6, 12.0), (0.25, 0.45), (6, 12, 24), (0.2, 0.9), (0.95, 1.1),
             (0.55, 0.25, 0.15, 0.05), 0.8, (0.85, 0.80, 0.85, 0.95, 1.20, 1.35, 1.00),
             ("Sparkling Water", "Orange Juice", "Cola", "Iced Tea", "Sports Drink",
              "Cold Brew", "Lemonade", "Energy Drink", "Craft Root Beer", "Coconut Water")),
    Category("household", 0.14, (1.5, 18.0), (0.28, 0.45), (6, 12, 24), (0.05, 0.25), (1.0, 3.0),
             (0.35, 0.20, 0.30, 0.15), 0.6, (0.90, 0.85, 0.90, 0.95, 1.05, 1.25, 1.10),
             ("Dish Soap", "Paper Towels", "Laundry Detergent", "Trash Bags", "Sponges",
              "All-Purpose Cleaner", "Aluminum Foil", "Light Bulbs", "Batteries AA",
              "Storage Bags")),
    Category("personal_care", 0.12, (1.5, 20.0), (0.35, 0.55), (6, 12, 24), (0.02, 0.12),
             (0.9, 1.5), (0.30, 0.25, 0.30, 0.15), 0.6, (0.95, 0.92, 0.95, 1.00, 1.05, 1.12, 1.01),
             ("Shampoo", "Toothpaste", "Body Wash", "Deodorant", "Sunscreen SPF 50",
              "Hand Cream", "Razor Blades", "Lip Balm", "Cotton Pads", "Mouthwash")),
    Category("electronics", 0.09, (8.0, 220.0), (0.18, 0.35), (1, 2, 4, 6), (0.005, 0.03),
             (1.5, 4.0), (0.05, 0.10, 0.45, 0.40), 0.5, (0.80, 0.78, 0.82, 0.90, 1.10, 1.45, 1.15),
             ("USB-C Cable", "Wireless Earbuds", "Phone Charger", "Bluetooth Speaker",
              "Smart Plug", "HDMI Cable", "Power Bank", "Fitness Tracker", "Webcam",
              "Gaming Controller")),
    Category("toys", 0.10, (3.0, 60.0), (0.30, 0.50), (4, 6, 12), (0.02, 0.1), (2.0, 5.0),
             (0.05, 0.15, 0.40, 0.40), 0.5, (0.75, 0.72, 0.78, 0.85, 1.05, 1.60, 1.25),
             ("Building Blocks Set", "Plush Bear", "Puzzle 1000 pc", "Board Game", "Toy Car",
              "Doll House", "Art Kit", "Remote Control Car", "Card Game", "Science Kit")),
    Category("apparel", 0.10, (4.0, 45.0), (0.45, 0.62), (6, 12), (0.01, 0.05), (2.0, 4.0),
             (0.10, 0.30, 0.35, 0.25), 0.5, (0.78, 0.75, 0.80, 0.90, 1.10, 1.50, 1.17),
             ("Cotton T-Shirt", "Wool Socks", "Rain Jacket", "Knit Beanie", "Hoodie",
              "Running Shorts", "Flannel Shirt", "Leggings", "Gloves", "Baseball Cap")),
    Category("garden", 0.07, (2.0, 50.0), (0.30, 0.50), (4, 6, 12), (0.05, 0.3), (1.0, 2.5),
             (0.10, 0.20, 0.40, 0.30), 0.4, (0.80, 0.75, 0.80, 0.90, 1.05, 1.50, 1.20),
             ("Potting Soil", "Garden Hose", "Seed Packet", "Plant Food", "Pruning Shears",
              "Bird Seed", "Watering Can", "Solar Lights", "Lawn Fertilizer", "Flower Pots")),
)

_BRANDS = ("Lakeshore", "Prairie", "Windy City", "Midway", "Great Lakes", "Harbor", "Union",
           "Northside", "Maxwell", "Riverbend")
_SIZES = ("", " Small", " Large", " Value Pack", " Family Size", " Twin Pack")


def _stratified(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """n labels in proportion to weights, each label at least once when n allows it."""
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    counts = np.floor(weights * n).astype(int)
    if n >= len(weights):
        counts = np.maximum(counts, (weights > 0).astype(int))
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    # Hand out the remainder by largest shortfall so the mix stays close to the weights.
    while counts.sum() < n:
        counts[np.argmax(weights * n - counts)] += 1
    labels = np.repeat(np.arange(len(weights)), counts)
    return rng.permutation(labels)


@dataclass(frozen=True)
class Catalog:
    products: pd.DataFrame  # the products table (DDL columns), price = current regular price
    category: np.ndarray  # (P,) index into CATEGORIES
    demand_class: np.ndarray  # (P,) SMOOTH..LUMPY
    promotable: np.ndarray  # (P,) bool


def make_catalog(rng: np.random.Generator, n_products: int) -> Catalog:
    cat = _stratified(rng, np.array([c.share for c in CATEGORIES]), n_products)
    cat = np.sort(cat, kind="stable")  # product ids grouped by category read naturally
    names: list[str] = []
    seen: set[str] = set()
    cost = np.empty(n_products)
    price = np.empty(n_products)
    pack = np.empty(n_products, dtype=np.int64)
    kg = np.empty(n_products)
    litres = np.empty(n_products)
    dclass = np.empty(n_products, dtype=np.int64)
    promotable = np.empty(n_products, dtype=bool)
    for ci, c in enumerate(CATEGORIES):
        idx = np.flatnonzero(cat == ci)
        if idx.size == 0:
            continue
        n = idx.size
        lo, hi = np.log(c.cost[0]), np.log(c.cost[1])
        cost[idx] = np.round(np.exp(rng.uniform(lo, hi, n)), 2)
        margin = rng.uniform(*c.margin, n)
        # Shelf prices end in .49 or .99 as in real stores.
        raw = cost[idx] / (1.0 - margin)
        ending = np.where(rng.random(n) < 0.7, 0.99, 0.49)
        price[idx] = np.maximum(np.floor(raw) + ending, np.round(cost[idx] * 1.1, 2))
        pack[idx] = rng.choice(np.array(c.packs), n)
        kg[idx] = np.round(np.clip(cost[idx] * rng.uniform(*c.kg_per_dollar, n), 0.02, 25.0), 3)
        litres[idx] = np.round(kg[idx] * rng.uniform(*c.litres_per_kg, n), 3)
        dclass[idx] = _stratified(rng, np.array(c.class_mix), n) if n >= 4 else rng.choice(
            4, n, p=np.array(c.class_mix) / sum(c.class_mix))
        promotable[idx] = rng.random(n) < c.promo_share
        for _ in range(n):
            base = (f"{_BRANDS[rng.integers(len(_BRANDS))]} {c.items[rng.integers(len(c.items))]}"
                    f"{_SIZES[rng.integers(len(_SIZES))]}")
            name, k = base, 2
            while name in seen:
                name, k = f"{base} #{k}", k + 1
            seen.add(name)
            names.append(name)
    # Across the whole chain every demand class appears when there are enough products.
    if n_products >= 4:
        for k in range(4):
            if not np.any(dclass == k):
                counts = np.bincount(dclass, minlength=4)
                donors = np.flatnonzero(dclass == np.argmax(counts))
                dclass[donors[0]] = k
    products = pd.DataFrame({
        "product_id": [f"P{i + 1:04d}" for i in range(n_products)],
        "name": names,
        "category": [CATEGORIES[i].name for i in cat],
        "unit_cost": cost,
        "price": np.round(price, 2),
        "case_pack": pack,
        "unit_weight_kg": kg,
        "unit_volume_l": litres,
    })
    return Catalog(products=products, category=cat, demand_class=dclass, promotable=promotable)
