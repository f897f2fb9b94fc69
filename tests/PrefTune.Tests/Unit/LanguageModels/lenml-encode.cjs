// Encodes and decodes strings with @lenml/tokenizers (transformers.js's JavaScript tokenizers), the independent
// implementation When_real_tokenizers_are_compared checks PrefTune's ids against.
// stdin:  {"modules": ".../node_modules", "tokenizers": [{"name", "json", "config"}], "texts": ["..."]}
// stdout: {"<name>": {"bos": id | null, "eos": id | null,
//                     "encodings": [{"ids": [...], "text": "<decoded, special tokens skipped>"}, ...one per text]}}
"use strict";
const fs = require("fs");
const request = JSON.parse(fs.readFileSync(0, "utf8"));
const { TokenizerLoader } = require(require.resolve("@lenml/tokenizers", { paths: [request.modules] }));
const readJson = file => JSON.parse(fs.readFileSync(file, "utf8"));
const result = {};
for (const t of request.tokenizers) {
  const tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON: readJson(t.json), tokenizerConfig: readJson(t.config) });
  const encodings = request.texts.map(text => {
    const ids = tokenizer.encode(text);
    // decode() refuses an empty id list (Qwen3 adds no BOS, so "" encodes to nothing).
    return { ids, text: ids.length ? tokenizer.decode(ids, { skip_special_tokens: true }) : "" };
  });
  result[t.name] = { bos: tokenizer.bos_token_id ?? null, eos: tokenizer.eos_token_id ?? null, encodings };
}
process.stdout.write(JSON.stringify(result));
