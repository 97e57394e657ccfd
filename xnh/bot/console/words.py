"""Every word a clerk reads, in Chinese: statuses, failure reasons, audit actions, and numbers written
the Chinese way (万, 亿). The store and the worker keep their reasons in English (logs, the CLI, tests);
the console translates them here, once, as Jinja filters.

    {{ row.reason|reason_zh }}    "bad number" → 号码无效;  "server error 503 (may have been sent)" → 平台出错(503),可能已发出
    {{ 1234567|wan }}             123.5万      {{ 250000000|wan }} 2.5亿      {{ 9876|wan }} 9,876
    {{ "13800009001"|mask_phone }}  138****9001
"""
import json
import re
from decimal import Decimal

from ...privacy import mask_name, mask_phone
from .common import bp

CAMPAIGN_STATUSES = {"draft": "草稿", "queued": "排队中", "scheduled": "已定时", "sending": "发送中", "running": "发送中",
                     "paused": "已暂停", "done": "已完成", "finished": "已完成", "cancelled": "已取消"}
OUTBOX_STATUSES = {"pending": "待发送", "claimed": "发送中", "submitted": "已提交", "sent": "已发出", "delivered": "已送达",
                   "undelivered": "未送达", "failed": "失败", "retry_wait": "等待重试", "skipped": "未发送",
                   "cancelled": "已取消", "unknown": "结果不明"}
# (pattern, Chinese): the first that matches the English reason wins; \1 … are kept (codes, numbers)
REASONS = [
    (r"^opted[ _]out$|^unsubscribed$", "已退订"),
    (r"^bad[ _]number$", "号码无效"),
    (r"^old payment$", "拨付已超过30天,不再通知"),
    (r"^no (sms|telegram) credentials$", r"未配置\1发送账号"),
    (r"^campaign cancelled$", "群发已取消"),
    (r"^rate limited \(429\)$", "平台限流,稍后重试"),
    (r"^timeout \(may have been sent\)(, gave up after (\d+) attempts)?$", "平台未应答,可能已发出"),
    (r"^server error (\d+) \(may have been sent\)(, gave up after (\d+) attempts)?$", r"平台出错(\1),可能已发出"),
    (r"^unreachable handset$", "对方手机无法接通"),
    (r"^blocked by the carrier$", "被运营商拦截"),
    (r"^filtered by the carrier$", "被运营商过滤"),
    (r"^blocked by the user$", "对方已屏蔽机器人"),
    (r"^text over (\d+) characters$", r"内容超过\1字"),
    (r"^error (\w+)$", r"平台错误码 \1"),
    (r"^HTTP (\d+)$", r"平台返回 HTTP \1"),
    (r"^resent: the provider never got it.*$", "平台未收到,已重发"),
    (r"^the worker stopped before sending it$", "发送程序停止前未发出,已放回队列"),
    (r"^resent by a clerk$", "工作人员已重发"),
    (r"^may have been sent: .*$", "发送中程序中断,无法向平台核对,可能已发出"),
    (r"^no way to ask (\w+) whether it got the message.*$", r"发送中程序中断,\1无法核对,可能已发出"),
    (r"^模板错误 / template error.*$", "模板错误"),
    (r"^status$|^skipped$", "未发送"),
]
_REASONS = [(re.compile(p), zh) for p, zh in REASONS]
ACTIONS = {
    "login": "登录", "logout": "退出", "login_failed": "登录失败", "login_blocked": "登录被限制",
    "forbidden": "越权访问被拒", "user_add": "添加用户", "user_disable": "停用用户", "user_enable": "启用用户",
    "password_change": "修改密码", "password_reset": "管理员重置密码", "sessions_ended": "结束全部会话",
    "upload": "上传文件", "upload_refused": "上传被拒", "sync_start": "开始导入", "sync_done": "导入完成",
    "sync_failed": "导入失败", "sync_interrupted": "导入因重启中断", "download_rejected": "下载被拒行",
    "campaign_create": "新建群发", "campaign_send": "开始群发", "campaign_cancel": "取消群发",
    "campaign_pause": "群发被暂停", "campaign_resume": "继续群发", "campaign_refused": "群发被拒",
    "outbox_resend": "重发结果不明的短信", "ticket_answer": "回复工单", "ticket_assign": "认领工单",
    "ticket_release": "放弃认领工单", "ticket_answer_refused": "重复回复被拒", "group_answer": "群组统一回复",
    "local_answer_save": "保存本地答复", "local_answer_edit": "修改本地答复", "local_answer_retire": "停用本地答复",
    "local_answer_export": "导出本地答复", "bind_phone": "绑定手机号", "subscribe": "订阅", "unsubscribe": "退订",
    "download_csv": "下载表格", "period_notice": "发送缴费期通知", "unbind": "解除绑定",
}
DETAIL_KEYS = {
    "ip": "地址", "name": "名称", "role": "角色", "upload": "上传", "file": "文件", "kind": "类型", "encoding": "编码",
    "inserted": "新增", "updated": "更新", "unchanged": "未变", "rejected": "拒收", "error": "原因", "reason": "原因",
    "campaign": "群发", "queued": "入队", "excluded": "排除", "cancelled": "取消", "rows": "条数", "ticket": "工单",
    "channel": "渠道", "outbox": "发送号", "audience": "受众", "path": "地址", "tickets": "工单", "sent": "发送",
    "entry": "条目", "topic": "主题", "points": "要点", "operator": "操作人", "rows_done": "已处理", "user": "用户",
    "sessions": "会话", "group": "问题组", "via": "途径",
}


@bp.app_template_filter("reason_zh")
def reason_zh(reason) -> str:
    """An outbox reason (English, as the worker writes it) in Chinese; an unknown one as it is."""
    text = str(reason or "").strip()
    for pattern, zh in _REASONS:
        m = pattern.match(text)
        if m:
            return m.expand(zh)
    return text


@bp.app_template_filter("campaign_status")
def campaign_status(status) -> str:
    return CAMPAIGN_STATUSES.get(status, status or "")


@bp.app_template_filter("outbox_status")
def outbox_status(status) -> str:
    return OUTBOX_STATUSES.get(status, status or "")


@bp.app_template_filter("action_zh")
def action_zh(action) -> str:
    return ACTIONS.get(action, action or "")


@bp.app_template_filter("detail_zh")
def detail_zh(raw) -> str:
    """An audit entry's detail (JSON) as 键:值 in Chinese; reasons translated, phones masked."""
    try:
        data = json.loads(raw or "{}")
    except ValueError:
        return raw or ""
    if not isinstance(data, dict):
        return str(data)
    parts = []
    for key, value in data.items():
        if key == "via":
            continue
        if isinstance(value, dict):
            value = ",".join(f"{reason_zh(k)} {v}" for k, v in value.items()) or "无"
        elif key in ("reason", "error"):
            value = reason_zh(value)
        parts.append(f"{DETAIL_KEYS.get(key, key)}:{value}")
    return ";".join(parts)


@bp.app_template_filter("wan")
def wan(value, digits: int = 1) -> str:
    """A number the Chinese way: up to 9,999 with separators, then 万, then 亿 (123.5万, 2.5亿)."""
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    sign, number = ("-" if number < 0 else ""), abs(number)
    for size, unit in ((Decimal(10) ** 8, "亿"), (Decimal(10) ** 4, "万")):
        if number >= size:
            shown = f"{number / size:,.{digits}f}".rstrip("0").rstrip(".")
            return f"{sign}{shown}{unit}"
    return f"{sign}{number:,.2f}".rstrip("0").rstrip(".") if number % 1 else f"{sign}{int(number):,}"


@bp.app_template_filter("mask_phone")
def _mask_phone(value) -> str:
    text = str(value or "")
    if text.startswith(("tg:", "wx:")):
        return text[:3] + "…" + text[-3:] if len(text) > 8 else text
    return mask_phone(text) if text else ""


@bp.app_template_filter("mask_name")
def _mask_name(value) -> str:
    return mask_name(value) if value else ""


CHANNELS = {"sms": "短信", "telegram": "Telegram", "wechat": "微信", "web": "网页", "cli": "命令行"}


@bp.app_template_filter("channel_zh")
def channel_zh(channel) -> str:
    return CHANNELS.get(channel, channel or "")


@bp.app_template_filter("topic_zh")
def topic_zh(topic_id) -> str:
    """A knowledge-base topic by its question (the id when it is not one of the package's topics)."""
    from ...policy_kb import qa

    try:
        return qa.by_id(topic_id).question
    except (KeyError, AttributeError):
        return topic_id or ""


@bp.app_template_filter("points_zh")
def points_zh(keys) -> str:
    """Comma-joined asked points or concept keys (time, attr:password) by their Chinese labels."""
    from ...policy_kb import concepts, points

    labels = {**points.labels(), **concepts.labels()}
    return "、".join(labels.get(k, k) for k in (keys or "").split(",") if k) or "—"
