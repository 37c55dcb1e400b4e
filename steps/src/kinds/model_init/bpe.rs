//! A byte-level BPE tokenizer trained on a corpus, saved as `tokenizer.json`, with an
//! architecture's special tokens (ids 0–3) and the token it starts every sequence with (OPT:
//! `</s>`, Llama: `<s>`).

use std::path::Path;

use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, TokenizerBuilder};

use crate::error::StepError;

/// Special tokens in id order, and the one that starts every sequence.
pub(crate) type Specials = ([&'static str; 4], &'static str);

/// OPT: `<s>` 0, `<pad>` 1, `</s>` 2 (also its beginning of sequence), `<unk>` 3.
pub(crate) const OPT_SPECIALS: Specials = (["<s>", "<pad>", "</s>", "<unk>"], "</s>");
/// Llama: `<unk>` 0, `<s>` 1, `</s>` 2, `<pad>` 3.
pub(crate) const LLAMA_SPECIALS: Specials = (["<unk>", "<s>", "</s>", "<pad>"], "<s>");

/// Trains on `texts` up to `vocab_size` tokens and saves to `path`; the vocabulary size reached.
pub(crate) fn train(
    texts: &[String],
    vocab_size: usize,
    (specials, bos): Specials,
    path: &Path,
) -> Result<usize, StepError> {
    let fail = |e: tokenizers::Error| StepError::Failed(format!("training the tokenizer: {e}"));
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(0)
        .special_tokens(
            specials
                .iter()
                .map(|s| AddedToken::from(*s, true))
                .collect(),
        )
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let template = |e: String| StepError::Failed(format!("tokenizer template: {e}"));
    let post = TemplateProcessing::builder()
        .try_single(format!("{bos} $A"))
        .map_err(template)?
        .special_tokens(vec![(
            bos,
            specials
                .iter()
                .position(|s| *s == bos)
                .expect("bos is special") as u32,
        )])
        .build()
        .map_err(|e| template(e.to_string()))?;
    let mut tok =
        TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, TemplateProcessing, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
            .with_post_processor(Some(post))
            .with_decoder(Some(ByteLevel::default()))
            .build()
            .map_err(fail)?;
    tok.train(&mut trainer, texts.iter()).map_err(fail)?;
    tok.save(path, false).map_err(fail)?;
    Ok(tok.get_vocab_size(true))
}
