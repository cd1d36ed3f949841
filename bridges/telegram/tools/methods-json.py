#!/usr/bin/env python3
"""Regenerates src/fake_bot_api/methods.json from ../shared/telegram-bot-api/api.json.

Usage: python3 tools/methods-json.py PATH/TO/api.json > src/fake_bot_api/methods.json
"""
import json
import re
import sys

METHODS = ['getMe', 'getUpdates', 'setWebhook', 'deleteWebhook', 'getWebhookInfo', 'sendMessage',
           'editMessageText', 'deleteMessage', 'setMessageReaction', 'sendChatAction', 'sendPhoto',
           'sendDocument', 'sendVideo', 'sendAudio', 'sendVoice', 'sendAnimation', 'sendSticker', 'sendLocation',
           'getFile',
           'getChat', 'getChatMember', 'getChatMemberCount', 'getChatAdministrators', 'getUserProfilePhotos']

api = json.load(open(sys.argv[1]))
out = {'version': api['version'], 'methods': {}}
for name in METHODS:
    method = api['methods'][name]
    out['methods'][name] = {
        'returns': method['returns'],
        'fields': [{'name': f['name'], 'types': f['types'], 'required': f['required']}
                   for f in method.get('fields', [])],
    }
emoji = [f for f in api['types']['ReactionTypeEmoji']['fields'] if f['name'] == 'emoji'][0]
out['reaction_emoji'] = re.findall(r'"([^"]+)"', emoji['description'])
json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
