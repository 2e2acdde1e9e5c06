"""DSP and data constants, with units, in one place.

Values marked "paper" come from Seshadri & Lerch 2021, section 3.1.4; "original code" from the
authors' repository (pseshadri9/contrastive-music-performance-assessment) or Pati et al.'s
PCConvNet code (ashispati/MusicPerfAssessment), as listed in docs/divergences.md.
"""

SAMPLE_RATE = 44_100  # Hz; audio is resampled to this, as the paper
FRAME_LENGTH = 1024  # samples at 44.1 kHz (23.2 ms), pYIN block size, as the paper
HOP_LENGTH = 256  # samples at 44.1 kHz (5.8 ms), as the paper
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # frames per second (172.27)

# Pitch search range for pYIN. The study's instruments sound, in concert pitch:
#   alto saxophone Db3-Ab5 (138.6-830.6 Hz), Bb clarinet D3-Bb6 (146.8-1864.7 Hz),
#   flute C4-D7 (261.6-2349.3 Hz).
# FMIN is a semitone-and-more below the lowest of them; FMAX covers the flute's altissimo.
# The longest period, SAMPLE_RATE / FMIN = 345 samples, fits YIN's lag window of
# FRAME_LENGTH // 2 = 512 samples.
FMIN = 128.0  # Hz, just below C3 (130.8 Hz)
FMAX = 2400.0  # Hz, above D7 (2349.3 Hz)

CHUNK_FRAMES = 1000  # frames (about 5.8 s) per training chunk, as the paper (section 4.1.1)
MIDI_MAX = 127.0  # paper: pitch normalised by dividing by 127
MIDI_OFFSET_CODE = 36.0  # original code: (midi - 36) / 72 on voiced frames
MIDI_RANGE_CODE = 72.0

# The three criteria the paper predicts (tone quality is ignored there, section 4.1).
CRITERIA = ("musicality", "note_accuracy", "rhythm_accuracy")
# Every rating column a table may carry: the paper's criteria plus FBA's tone quality (kept, never trained).
RATED_COLUMNS = (*CRITERIA, "tone_quality")
BANDS = ("middleschool", "symphonicband", "concertband")
STUDY_BANDS = ("middleschool", "symphonicband")  # the paper leaves out concertband
INSTRUMENTS = ("Alto Saxophone", "Bb Clarinet", "Flute")
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # paper, section 4.2: 8:1:1
LATENT_DIM = 16  # channels after the third conv block (paper / PCConvNet)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# Columns of a ratings table (FBA index or demo ratings.csv), in order.
RATINGS_COLUMNS = (
    "recording_id",
    "student_id",
    "year",
    "band",
    "instrument",
    "musicality",
    "note_accuracy",
    "rhythm_accuracy",
    "tone_quality",
    "segment_start",
    "segment_duration",
    "audio_path",
    "pitchtrack_path",
    "split",
    "piece_id",  # optional: the recordings of one piece (FBA: year/band/instrument/segment; demo: the etude)
    "reference_path",  # optional: a MIDI score, an audio file or a time_sec,f0_hz pitch track of that piece
)

# Model names (the one place they are spelled out), with their display labels.
# pcconvnet: Pati et al. 2018; contrastive (two-step) and contrastive-jl (joint): Seshadri & Lerch 2021.
# The reference-informed models (raympa.informed) follow Huang et al. 2020's SIConvNet (si-*) and
# JointEmbedNet (joint-embed*), each with the three losses: MSE, two-step contrastive, MSE + lambda * L_C.
MODEL_LABELS = {
    "pcconvnet": "PCConvNet",
    "contrastive": "ContrastiveCNN",
    "contrastive-jl": "ContrastiveCNN-JL",
    "si-pcconvnet": "SI-PCConvNet",
    "si-contrastive": "SI-ContrastiveCNN",
    "si-contrastive-jl": "SI-ContrastiveCNN-JL",
    "joint-embed": "JointEmbedNet",
    "joint-embed-contrastive": "JointEmbedNet-Contrastive",
    "joint-embed-jl": "JointEmbedNet-JL",
}
MODELS = tuple(MODEL_LABELS)
PAPER_MODELS = MODELS[:3]  # Seshadri & Lerch 2021's three: contour only, no reference
REFERENCE_MODELS = MODELS[3:]  # read a reference aligned to the performance (TrainConfig.reference)
REFERENCE_MODES = ("none", "table", "peers")  # TrainConfig.reference: none = the paper's setting
BASELINE_MODEL = "pcconvnet"
