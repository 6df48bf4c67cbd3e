"""Demo data drawn from the source reports (../shared/sources/), as the public API takes it.

Places: the counties are the ones the reports name, with their real division codes (惠城区 441302,
隆安县 450123, 上思县 450621, 北仑区 330206, 临渭区 610502, 丰满区 220211). Villages and communities
named in the reports (东胜村, 芦村村, 岑山村, 高河塘社区, 铁路鑫苑社区) keep their names; their 9- and
12-digit township and village codes are plausible, not official. Figures (45 disabled trainees, 550,000
yuan, 1,000 books, 2,000 villagers at free clinics, 20+ course types…) are the reports'.

Credit codes are made here with the GB 32100 check character, so they validate but belong to nobody.
Dates are relative to the day the demo is loaded, so needs and offers are never in the past.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.offers.schemas import credit_code_check_character


def credit_code(body: str) -> str:
    """17 characters (registry, category, 6-digit division, 9-character organisation code) + check."""
    assert len(body) == 17, body
    return body + credit_code_check_character(body)


@dataclass(frozen=True)
class Village:
    code: str
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Organisation:
    key: str
    name: str
    org_type: str
    credit_code: str
    grade: int | None
    region_codes: list[str]
    description: str
    contact: str
    verified: bool = True


@dataclass(frozen=True)
class Offer:
    organisation: str  # Organisation.key
    title: str
    description: str
    categories: list[str]
    kind: str
    quantity: str
    unit: str
    region_codes: list[str]
    available_days: int
    beneficiary_groups: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    radius_km: float | None = None
    centre: str | None = None  # a Village.code whose coordinates are the offer's centre


@dataclass(frozen=True)
class Need:
    village: str  # Village.code
    title: str
    description: str
    category: str
    kind: str
    quantity: str
    unit: str
    beneficiaries: int
    needed_in_days: int
    urgency: int = 3
    beneficiary_groups: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    channel: str = "online"
    requester: dict[str, str] | None = None


@dataclass(frozen=True)
class Pairing:
    organisation: str
    village: str
    note: str


@dataclass(frozen=True)
class DemoUser:
    role: str
    username: str
    display_name: str
    village_code: str | None = None
    region_code: str | None = None
    organisation: str | None = None  # Organisation.key


DONGSHENG, LUCUN = "441302110201", "441302110202"
CENSHAN = "450123104213"
SIYANG = "450621100001"
GAOHETANG = "330206001018"
XINYUAN = "610502001012"
QIANERDAO = "220211102203"

VILLAGES = [
    Village(DONGSHENG, "惠州市惠城区芦洲镇东胜村", 23.2796, 114.5524),
    Village(LUCUN, "惠州市惠城区芦洲镇芦村村", 23.2615, 114.5712),
    Village(CENSHAN, "南宁市隆安县乔建镇岑山村", 23.0418, 107.7536),
    Village(SIYANG, "防城港市上思县思阳镇思阳社区", 22.1532, 107.9822),
    Village(GAOHETANG, "宁波市北仑区新碶街道高河塘社区", 29.8992, 121.8503),
    Village(XINYUAN, "渭南市临渭区人民街道铁路鑫苑社区", 34.4996, 109.4933),
    Village(QIANERDAO, "吉林市丰满区旺起镇前二道村", 43.7524, 126.6701),
]
VILLAGE_BY_CODE = {village.code: village for village in VILLAGES}

ORGANISATIONS = [
    Organisation(
        "entrepreneurs", "惠州市民营企业家联合会", "social_organisation", credit_code("51441300MJL701926"), 5, ["4413"],
        "发动会员企业捐赠物资，完善芦洲镇东胜村村道安全护栏建设，助力绿美生态建设。", "陈会长",
    ),
    Organisation(
        "commerce", "惠州市商业交流合作协会", "social_organisation", credit_code("51441300MJL70284X"), 4, ["4413"],
        "助力“新芦悠品”农产品特色品牌，对接农产品销售渠道与物流。", "李秘书长",
    ),
    Organisation(
        "gongmin", "惠州市公民伙伴社工服务中心", "social_organisation", credit_code("52441302MJL703311"), 4, ["441302"],
        "以承接政府购买项目方式，为芦洲镇45名残疾人学员开展种养技能培训。", "黄社工",
    ),
    Organisation(
        "calligraphers", "惠州市书法家协会", "social_organisation", credit_code("51441300MJL704127"), 3, ["4413"],
        "春节期间到芦洲镇开展送春联活动，现场应村民需求书写200多副春联。", "张老师",
    ),
    Organisation(
        "banks", "惠州市银行业协会", "social_organisation", credit_code("51441300MJL705230"), 5, ["4413"],
        "实施“百车进百村”慈善项目，为基层社工站配备电瓶车。", "刘主任",
    ),
    Organisation(
        "hikers", "惠州市登山户外运动协会", "social_organisation", credit_code("51441300MJL706884"), None, ["4413"],
        "协助芦洲镇开发“踏歌寻绿·醉美芦洲”60公里徒步环线。（待协调员认证）", "周领队", verified=False,
    ),
    Organisation(
        "tongxin-fund", "民进广西区委会“同心·圆梦”专项基金", "foundation", credit_code("53450000MJA110073"), 4, ["45"],
        "2014年成立，筹集首批善款55万余元，用于广西农村学校支教助学。", "覃女士",
    ),
    Organisation(
        "minjin-gx", "民进广西区委会", "party_branch", credit_code("13450000MB1907256"), None, ["45"],
        "依托上思县教育实践基地开展支教助学，在隆安县岑山村实施定点扶贫。", "韦处长",
    ),
    Organisation(
        "minjin-medical", "民进广西区直医卫总支部医疗志愿服务队", "volunteer_team", credit_code("13450000MB1911430"), None, ["45"],
        "深入贫困地区农村为2000多名群众义诊。", "梁医生",
    ),
    Organisation(
        "minjin-publishers", "民进广西区直出版支部", "party_branch", credit_code("13450000MB1923715"), None, ["45"],
        "发动出版界会员向岑山村小学捐赠图书1000册，捐赠科技书籍。", "蒙编辑",
    ),
    Organisation(
        "beilun-vocational", "宁波市北仑职业高级中学技能培训中心", "school", credit_code("12330206MB0512837"), None, ["330206"],
        "依托校企合作平台和技能培训中心，开设数控、物流、服装、保洁、家政、安保等培训项目20多种，"
        "为失土农民开展“菜单式”“订单式”培训。", "邬老师",
    ),
    Organisation(
        "weinan-redband", "渭南市教育系统红袖章志愿服务队", "volunteer_team", credit_code("12610500MB2960048"), None, ["610502"],
        "包联铁路鑫苑社区，开展组团和代办服务、社区服务。", "王队长",
    ),
    Organisation(
        "jlau-league", "民盟吉林农业大学委员会", "party_branch", credit_code("13220000MB0418093"), None, ["22"],
        "坚持“求真务实、量力而行、服务三农、讲求实效”，开展农业技术服务。", "张主委",
    ),
]

OFFERS = [
    Offer("entrepreneurs", "村道安全护栏捐建资金", "会员企业捐款捐物，用于村道安全护栏等乡村基础设施。",
          ["infrastructure"], "funds", "200000", "CNY", ["441302"], 365, ["general"]),
    Offer("commerce", "农产品销售对接与电商带货", "为红薯、板栗南瓜、玉米等优质农产品对接商超、物流快递和直播带货。",
          ["industry"], "expertise", "40", "person_day", ["4413"], 300, ["low_income", "general"], ["电商直播", "农产品营销"]),
    Offer("gongmin", "残疾人种养技能培训", "集中理论教学和实地参观学习，教授农业种植、养殖等实用技术。",
          ["talent", "industry"], "training", "60", "trainee", ["441302"], 240, ["disabled"], ["种植技术", "养殖技术"]),
    Offer("calligraphers", "春节送春联进村", "书法家现场应村民需求书写春联，送上新春祝福。",
          ["culture"], "service", "6", "session", ["4413"], 200, ["general"], ["书法"]),
    Offer("banks", "“百车进百村”社工站电瓶车", "为基层社工站配备电瓶车，把社会工作专业服务送到群众家门口。",
          ["governance"], "goods", "100", "item", ["4413"], 365, ["general"]),
    Offer("tongxin-fund", "“同心·圆梦”教育帮扶资金", "专项基金首批善款55万元，用于农村学校校舍维修、食堂改建和贫困学生资助。",
          ["education"], "funds", "550000", "CNY", ["45"], 540, ["students", "children", "left_behind_children"]),
    Offer("minjin-gx", "特级教师送教与中小学教师培训", "组织特级教师到上思县开展中小学教师培训。",
          ["education", "talent"], "training", "120", "trainee", ["450621", "450123"], 365, [], ["教学法", "班主任工作"]),
    Offer("minjin-gx", "学生床上用品捐赠", "联系社会爱心人士捐赠学生床上用品。",
          ["education"], "goods", "500", "set", ["45"], 180, ["students"]),
    Offer("minjin-medical", "送医下乡义诊", "医卫界会员到农村开展义诊、健康咨询。",
          ["health"], "service", "12", "session", ["45"], 365, ["elderly", "general"], ["全科", "中医"]),
    Offer("minjin-publishers", "出版界捐赠图书", "出版界会员向乡村小学捐赠图书、科技书籍和《新华字典》。",
          ["education", "culture"], "goods", "3000", "book", ["45"], 365, ["children", "students"]),
    Offer("beilun-vocational", "失土农民“菜单式”技能培训",
          "按性别、年龄、文化程度和培训需求制定培训菜单：数控、物流、服装、保洁、家政、安保等20多种。",
          ["talent"], "training", "200", "trainee", ["330206"], 365, ["landless_farmers", "women"],
          ["数控", "物流", "服装", "保洁", "家政", "安保"], 30.0, GAOHETANG),
    Offer("weinan-redband", "红袖章社区代办与助老服务", "组团和代办服务、为行动不便的老人送餐、为困难家庭学生辅导功课。",
          ["elderly_children"], "service", "220", "person_day", ["610502"], 300, ["elderly", "children"], ["送餐", "代办服务", "课业辅导"]),
    Offer("jlau-league", "服务三农：农业技术指导", "农大盟员专家到村开展种植、养殖技术指导和农技培训。",
          ["industry"], "expertise", "30", "person_day", ["2202"], 365, ["general"], ["农技指导", "养殖技术"]),
]

NEEDS = [
    Need(DONGSHENG, "东胜村村道安全护栏建设", "村道临水临崖路段缺少安全护栏，需资金完善护栏建设。",
         "infrastructure", "funds", "180000", "CNY", 1200, 120, 4, ["general"]),
    Need(LUCUN, "芦洲镇45名残疾人种养技能培训", "为全镇45名残疾人开展农业种植、养殖等实用技术培训，帮助增收。",
         "talent", "training", "45", "trainee", 45, 150, 3, ["disabled"], ["养殖技术"]),
    Need(LUCUN, "“新芦悠品”农产品销售渠道", "撂荒地复耕后红薯、板栗南瓜、玉米产量增加，需要销售渠道和电商带货指导。",
         "industry", "expertise", "30", "person_day", 800, 90, 4, ["low_income"], ["电商直播"]),
    Need(DONGSHENG, "春节送春联", "春节前请书法家到村里为村民写春联。",
         "culture", "service", "2", "session", 600, 75, 2, ["general"], ["书法"],
         channel="visit", requester={"name": "东胜村村民代表", "phone": "0752-2100000"}),
    Need(CENSHAN, "岑山村村委办公楼建设", "村委办公楼年久失修，需新建村委办公楼。",
         "infrastructure", "funds", "800000", "CNY", 1800, 365, 3, ["general"]),
    Need(CENSHAN, "岑山村人畜饮水工程", "旱季人、畜饮水困难，需修建饮水工程。",
         "infrastructure", "funds", "350000", "CNY", 1800, 60, 5, ["general", "elderly"]),
    Need(CENSHAN, "岑山村小学教学楼维修和食堂改建", "维修村小教学楼，改建村小食堂和厕所。",
         "education", "funds", "260000", "CNY", 180, 200, 4, ["students", "left_behind_children"]),
    Need(CENSHAN, "岑山村小学图书", "村小学图书室缺书，需要儿童读物和《新华字典》1000册。",
         "education", "goods", "1000", "book", 180, 120, 2, ["children", "students"]),
    Need(CENSHAN, "岑山村群众义诊", "为2000多名村民开展义诊和健康咨询。",
         "health", "service", "4", "session", 2000, 90, 3, ["elderly", "general"], ["全科"]),
    Need(SIYANG, "上思民族中学学生床上用品", "住校学生床上用品陈旧，需要300套。",
         "education", "goods", "300", "set", 300, 60, 4, ["students"]),
    Need(SIYANG, "上思县中小学教师培训", "为乡村中小学教师开展教学法和班主任工作培训。",
         "education", "training", "60", "trainee", 60, 180, 3, [], ["教学法"]),
    Need(GAOHETANG, "失土农民“菜单式”技能培训", "“4050”失土农民按年龄和文化程度选择保洁、家政、数控等课程，实现转移就业。",
         "talent", "training", "80", "trainee", 80, 150, 3, ["landless_farmers"], ["家政", "数控"]),
    Need(XINYUAN, "困难老人送餐助老", "社区内行动不便、不能做饭的困难老人需要送餐服务。",
         "elderly_children", "service", "120", "person_day", 40, 100, 4, ["elderly"], ["送餐"],
         channel="phone", requester={"name": "社区网格员", "phone": "0913-2000000"}),
    Need(QIANERDAO, "果蔬种植与养殖技术指导", "村民发展庭院经济，需要种植和养殖技术指导。",
         "industry", "expertise", "15", "person_day", 300, 150, 2, ["general"], ["农技指导"]),
]

PAIRINGS = [
    Pairing("minjin-gx", CENSHAN, "民进广西区委会在岑山村实施定点扶贫（2011年起）。"),
    Pairing("entrepreneurs", DONGSHENG, "“百千万工程”社会组织结对帮扶。"),
    Pairing("gongmin", LUCUN, "“百千万工程”社会组织结对帮扶。"),
    Pairing("beilun-vocational", GAOHETANG, "盟社共建：民盟北仑职高支部与高河塘社区协作共建。"),
]

# One login per role besides the admin; their passwords are made at first load.
USERS = [
    DemoUser("coordinator", "huicheng-coordinator", "惠城区民政局（协调员）", region_code="441302"),
    DemoUser("officer", "dongsheng-officer", "东胜村村干部", village_code=DONGSHENG),
    DemoUser("org_member", "gongmin-member", "公民伙伴社工服务中心", organisation="gongmin"),
]
